Console.Error.WriteLine("wsbroker-load: no scenarios yet");
return 2;
