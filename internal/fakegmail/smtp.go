package fakegmail

type smtpService struct{}
type smtpState struct{}

func (st *smtpState) init() {}

func (s *Server) startSMTP(a, b string) error { return nil }
func (p *smtpService) implicitAddr() string   { return "" }
func (p *smtpService) starttlsAddr() string   { return "" }
func (p *smtpService) close()                 {}
