// WeirEdge
