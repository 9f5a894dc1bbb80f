package fakegmail

type pop3Service struct{}

func (s *Server) startPOP3(addr string) error { return nil }
func (p *pop3Service) addr() string           { return "" }
func (p *pop3Service) close()                 {}
