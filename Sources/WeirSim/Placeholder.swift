// WeirSim
