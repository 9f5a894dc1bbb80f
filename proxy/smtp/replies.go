package smtp

import (
	"errors"
	"strconv"
	"strings"

	gosmtp "github.com/emersion/go-smtp"

	"github.com/oauthbridge/oauthbridge/proxy"
)

// Replies the bridge itself gives. go-smtp writes an *SMTPError's code and
// text; any other error's text would reach the client, so the session
// returns nothing else (FACTS: go-smtp matches with a plain type
// assertion).
var (
	// RFC 4954 §6: "530 5.7.0 Authentication required".
	errAuthRequired = &gosmtp.SMTPError{Code: 530, EnhancedCode: gosmtp.EnhancedCode{5, 7, 0}, Message: "Authentication required"}
	// RFC 3207 §4: a server that requires TLS answers other commands with
	// "530 Must issue a STARTTLS command first"; 5.7.0 per RFC 3463.
	errTLSRequired = &gosmtp.SMTPError{Code: 530, EnhancedCode: gosmtp.EnhancedCode{5, 7, 0}, Message: "Must issue a STARTTLS command first"}
	// RFC 4954 §4: "The AUTH command is not permitted during a mail
	// transaction" (503 out of sequence).
	errAuthInTx = &gosmtp.SMTPError{Code: 503, EnhancedCode: gosmtp.EnhancedCode{5, 5, 1}, Message: "AUTH not permitted during a mail transaction"}
	// RFC 5321 §4.1.4: MAIL while a transaction is open is out of sequence.
	errNestedMail = &gosmtp.SMTPError{Code: 503, EnhancedCode: gosmtp.EnhancedCode{5, 5, 1}, Message: "Nested MAIL command: send RSET first"}
	// RFC 4954 §4: unknown mechanism.
	errUnknownMech = &gosmtp.SMTPError{Code: 504, EnhancedCode: gosmtp.EnhancedCode{5, 5, 4}, Message: "Unrecognized authentication type (use PLAIN or LOGIN)"}
	// RFC 4954 §4: a client response that is not valid for the mechanism.
	errBadSASL = &gosmtp.SMTPError{Code: 501, EnhancedCode: gosmtp.EnhancedCode{5, 5, 2}, Message: "Malformed authentication response"}
	// RFC 4616 §2: an authorization identity other than the user.
	errAuthzid = &gosmtp.SMTPError{Code: 535, EnhancedCode: gosmtp.EnhancedCode{5, 7, 8}, Message: "Authorization identity must be empty or equal the user name"}
	// RFC 5321 §3.8 and RFC 3463 X.3.2 "system not accepting network messages".
	errShutdown = &gosmtp.SMTPError{Code: 421, EnhancedCode: gosmtp.EnhancedCode{4, 3, 2}, Message: proxy.ClientMessage(proxy.ErrShuttingDown, "")}
	// The upstream connection broke and the open transaction (MAIL and
	// RCPTs the client was told were accepted) could not be restored on a
	// new one: the whole transaction fails, temporarily, so the client
	// sends it again rather than some recipient silently missing it.
	errTxLost = &gosmtp.SMTPError{Code: 451, EnhancedCode: gosmtp.EnhancedCode{4, 4, 0}, Message: "Upstream connection lost and the transaction could not be restored; message not sent, send it again"}
	// A cut during DATA whose one retry failed too: nothing was delivered.
	errDataNotSent = &gosmtp.SMTPError{Code: 451, EnhancedCode: gosmtp.EnhancedCode{4, 4, 0}, Message: "Upstream connection lost during the message transfer; message not sent, send it again"}
	// DESIGN §4 continuity 5: the final dot went out, no reply came. The
	// message may or may not have been delivered; a temporary failure
	// makes the client send it again: at least once, never silently lost.
	errDataUnknown = &gosmtp.SMTPError{Code: 451, EnhancedCode: gosmtp.EnhancedCode{4, 4, 0}, Message: "Upstream connection lost after the message was sent, before its reply; the message may have been delivered, sending it again may duplicate it"}
	// RFC 5321 §4.2.2 452 and RFC 3463 X.3.1 "mail system full".
	errStorage = &gosmtp.SMTPError{Code: 452, EnhancedCode: gosmtp.EnhancedCode{4, 3, 1}, Message: "Insufficient system storage for the message"}
	// RFC 5321 §4.5.3.2.5: the client stopped sending the message.
	errDataTimeout = &gosmtp.SMTPError{Code: 451, EnhancedCode: gosmtp.EnhancedCode{4, 4, 2}, Message: "Timeout while receiving the message; message not sent"}
	errDataAborted = &gosmtp.SMTPError{Code: 451, EnhancedCode: gosmtp.EnhancedCode{4, 4, 2}, Message: "Message transfer interrupted; message not sent"}
	// RFC 5322 §2.1.1: lines are at most 998 characters.
	errLineTooLong = &gosmtp.SMTPError{Code: 554, EnhancedCode: gosmtp.EnhancedCode{5, 6, 0}, Message: "Message has a line too long"}
	// RFC 6531 §3.4: the upstream does not take SMTPUTF8 (it offered it
	// when the session began and stopped since).
	errNoUTF8 = &gosmtp.SMTPError{Code: 555, EnhancedCode: gosmtp.EnhancedCode{5, 5, 4}, Message: "SMTPUTF8 is not supported by the upstream server"}
)

// errUpstreamLost is the reply when the upstream connection was lost again
// right after a resume. A 421 from the upstream is not passed on as 421:
// to the client that would mean the bridge closes its connection.
func errUpstreamLost(err error) error {
	var se *gosmtp.SMTPError
	if errors.As(err, &se) && se.Code == 421 {
		return &gosmtp.SMTPError{Code: 451, EnhancedCode: se.EnhancedCode, Message: se.Message}
	}
	return &gosmtp.SMTPError{Code: 451, EnhancedCode: gosmtp.EnhancedCode{4, 4, 2}, Message: "Upstream connection lost, try again"}
}

func isReply(err error) bool {
	var se *gosmtp.SMTPError
	return errors.As(err, &se)
}

// loginFailure maps a failed AUTH to its reply (proxy.Failure's table):
// 535 5.7.8 for credentials, consent and refused tokens (RFC 4954 §6),
// 454 4.7.0 for temporary problems, 421 for limits and shutdown, after
// which the connection is closed.
func (s *session) loginFailure(err error, name string) error {
	msg := proxy.ClientMessage(err, name)
	switch proxy.Classify(err) {
	case proxy.FailBadCredentials, proxy.FailConsent, proxy.FailRefused:
		return &gosmtp.SMTPError{Code: 535, EnhancedCode: gosmtp.EnhancedCode{5, 7, 8}, Message: msg}
	case proxy.FailLimit:
		s.cc.closeAtNextRead()
		return &gosmtp.SMTPError{Code: 421, EnhancedCode: gosmtp.EnhancedCode{4, 7, 0}, Message: msg}
	case proxy.FailShutdown:
		s.cc.closeAtNextRead()
		return errShutdown
	}
	return &gosmtp.SMTPError{Code: 454, EnhancedCode: gosmtp.EnhancedCode{4, 7, 0}, Message: msg}
}

// txFailure maps a failure to (re)establish the upstream inside a
// transaction (MAIL of a relay client, a resume) to its reply. 535 and
// 454 are AUTH replies (RFC 4954), so here a temporary 451 carries the
// same text; limits and shutdown are 421 and close.
func (s *session) txFailure(err error) error {
	name := ""
	if s.acct != nil {
		name = s.acct.Name
	}
	msg := proxy.ClientMessage(err, name)
	switch proxy.Classify(err) {
	case proxy.FailConsent, proxy.FailRefused, proxy.FailBadCredentials:
		return &gosmtp.SMTPError{Code: 451, EnhancedCode: gosmtp.EnhancedCode{4, 7, 0}, Message: msg}
	case proxy.FailLimit:
		s.cc.closeAtNextRead()
		return &gosmtp.SMTPError{Code: 421, EnhancedCode: gosmtp.EnhancedCode{4, 7, 0}, Message: msg}
	case proxy.FailShutdown:
		s.cc.closeAtNextRead()
		return errShutdown
	}
	return &gosmtp.SMTPError{Code: 451, EnhancedCode: gosmtp.EnhancedCode{4, 4, 1}, Message: msg}
}

// okReply turns the upstream's 250 after the final dot into the local
// reply, with its text (Gmail's includes a queue ID users quote in support
// requests). go-smtp writes an *SMTPError's code as it is, 250 included.
func okReply(statusText string) error {
	code, text := splitEnhanced(statusText)
	if text == "" {
		text = "OK"
	}
	return &gosmtp.SMTPError{Code: 250, EnhancedCode: code, Message: text}
}

// splitEnhanced splits "2.0.0 text" into its enhanced status code (RFC
// 2034) and text, removing the code repeated on continuation lines.
func splitEnhanced(s string) (gosmtp.EnhancedCode, string) {
	first, rest, _ := strings.Cut(s, " ")
	parts := strings.Split(first, ".")
	if len(parts) != 3 {
		return gosmtp.EnhancedCodeNotSet, s
	}
	var ec gosmtp.EnhancedCode
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 || n > 999 {
			return gosmtp.EnhancedCodeNotSet, s
		}
		ec[i] = n
	}
	if ec[0] != 2 {
		return gosmtp.EnhancedCodeNotSet, s
	}
	return ec, strings.ReplaceAll(rest, "\n"+first+" ", "\n")
}

// replyCode is the code of the reply err will produce, for logs.
func replyCode(err error) int {
	var se *gosmtp.SMTPError
	if errors.As(err, &se) {
		return se.Code
	}
	if err == nil {
		return 250
	}
	return 0
}
