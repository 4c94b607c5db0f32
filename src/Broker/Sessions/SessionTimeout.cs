namespace WsBroker.Broker.Sessions;

/// <summary>Which of a session's timeouts has passed (<see cref="SessionClock.Due"/>), in the order they are judged.</summary>
internal enum SessionTimeout : byte { None, NoSendProgress, TokenExpired, NoConnect, HeartBeat, PartialFrame }
