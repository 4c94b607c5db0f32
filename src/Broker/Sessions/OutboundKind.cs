namespace WsBroker.Broker.Sessions;

internal enum OutboundKind : byte { Delivery, Frame, HeartBeat, Close }
