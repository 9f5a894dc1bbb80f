package admin

import (
	"bytes"
	_ "embed"
	"fmt"
	"html/template"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/oauthbridge/oauthbridge/tokens"
)

type accountStatus = tokens.AccountStatus

//go:embed page.html
var pageHTML string

//go:embed style.css
var styleCSS []byte

// The page is server-rendered with html/template (contextual escaping:
// every value from the Source is text, never markup) and needs no
// script; it reads top to bottom without the stylesheet.
var (
	pageTmpl   = template.Must(template.New("page").Parse(pageHTML))
	resultTmpl = template.Must(template.Must(pageTmpl.Clone()).New("result").Parse(`{{template "head" .Title}}
<main>
<h1>{{.Title}}</h1>
{{if .Account}}<p>Account: <strong>{{.Account}}</strong></p>{{end}}
<p class="{{if .OK}}ok{{else}}bad{{end}}">{{.Text}}</p>
<p><a href="/">Back to the status page</a></p>
</main>
</body>
</html>
`))
)

// pageData is the status page's view of a Status: display strings are
// computed here so the template stays logic-free.
type pageData struct {
	Status
	CSRF     string
	Taken    string
	Rows     []pageRow
	Errors   []pageError
	Sessions []protoCount
}

type pageRow struct {
	Account, Flow, State, StateClass   string
	Expiry, RefreshAge, LastUsed, Last string
	LastError                          string
	Sessions                           string
	Authorize                          bool
}

type pageError struct {
	Time, Message, Attrs string
}

type protoCount struct {
	Proto string
	N     int
}

type resultPage struct {
	Title, Text, Account string
	OK                   bool
}

func (h *handler) page(w http.ResponseWriter, r *http.Request) {
	st := h.snapshot()
	d := pageData{Status: st, CSRF: h.csrf, Taken: st.Time.Format("2006-01-02 15:04:05 UTC")}
	for _, p := range protocols {
		d.Sessions = append(d.Sessions, protoCount{strings.ToUpper(p), st.Sessions[p]})
	}
	for _, a := range st.Accounts {
		d.Rows = append(d.Rows, pageRow{
			Account: a.Account, Flow: a.Flow, State: stateText(a.State), StateClass: stateClass(a.State),
			Expiry:     expiryText(a.AccessExpiry, st.Time),
			RefreshAge: ageText(a.RefreshTokenIssuedAt, st.Time),
			LastUsed:   ageText(a.RefreshTokenLastUsed, st.Time),
			Last:       ageText(a.LastRefreshAt, st.Time),
			LastError:  a.LastError,
			Sessions:   sessionsText(a.Sessions),
			Authorize:  a.Authorize,
		})
	}
	for _, e := range st.RecentErrors {
		d.Errors = append(d.Errors, pageError{Time: e.Time.Format("2006-01-02 15:04:05"), Message: e.Message, Attrs: attrsText(e.Attrs)})
	}
	h.render(w, http.StatusOK, pageTmpl, d)
}

func (h *handler) result(w http.ResponseWriter, code int, p resultPage) {
	h.render(w, code, resultTmpl, p)
}

// render executes into a buffer first so a template error becomes a 500,
// not half a page.
func (h *handler) render(w http.ResponseWriter, code int, t *template.Template, data any) {
	var buf bytes.Buffer
	if err := t.Execute(&buf, data); err != nil {
		h.log.Error("admin: rendering a page", "err", err)
		http.Error(w, "admin: internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	w.Write(buf.Bytes())
}

func (h *handler) style(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/css; charset=utf-8")
	w.Write(styleCSS)
}

func stateText(s string) string {
	switch tokens.State(s) {
	case tokens.StateAuthorized:
		return "authorized"
	case tokens.StateConsentRequired:
		return "consent required: authorize again"
	case tokens.StateNotAuthorized:
		return "not authorized yet"
	case tokens.StateError:
		return "error reading tokens"
	}
	return s
}

func stateClass(s string) string {
	if tokens.State(s) == tokens.StateAuthorized {
		return "ok"
	}
	return "bad"
}

// expiryText: "in 41m (12:41:07 UTC)", "expired 3m ago (...)" or "—".
func expiryText(t, now time.Time) string {
	if t.IsZero() {
		return "—"
	}
	at := t.Format("15:04:05 UTC")
	if !t.After(now) {
		return "expired " + span(now.Sub(t)) + " ago (" + at + ")"
	}
	return "in " + span(t.Sub(now)) + " (" + at + ")"
}

// ageText: "3d 4h ago" or "—".
func ageText(t, now time.Time) string {
	if t.IsZero() {
		return "—"
	}
	if t.After(now) {
		return "just now"
	}
	return span(now.Sub(t)) + " ago"
}

// span renders d with its two largest units.
func span(d time.Duration) string {
	d = d.Round(time.Second)
	days := d / (24 * time.Hour)
	d -= days * 24 * time.Hour
	hours := d / time.Hour
	d -= hours * time.Hour
	mins := d / time.Minute
	secs := (d - mins*time.Minute) / time.Second
	switch {
	case days > 0:
		return fmt.Sprintf("%dd %dh", days, hours)
	case hours > 0:
		return fmt.Sprintf("%dh %dm", hours, mins)
	case mins > 0:
		return fmt.Sprintf("%dm %ds", mins, secs)
	}
	return fmt.Sprintf("%ds", secs)
}

func sessionsText(m map[string]int) string {
	var parts []string
	for _, p := range protocols {
		if m[p] > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", strings.ToUpper(p), m[p]))
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

func attrsText(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + m[k]
	}
	return strings.Join(parts, " ")
}
