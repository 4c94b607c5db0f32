await WsBroker.Broker.BrokerApp.Build(args).RunAsync();
