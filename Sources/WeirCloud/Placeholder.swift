// WeirCloud
