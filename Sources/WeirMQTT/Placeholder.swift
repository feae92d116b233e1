// WeirMQTT
