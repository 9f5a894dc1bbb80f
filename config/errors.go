package config

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// Error is one problem in a configuration, located by its key path
// ("listeners[0].tls") and, when the config came from a file, its line.
//
// Its text has one of these forms, so every message reads the same way
// whether it came from parsing, validation or the file checks of Load:
//
//	config.yaml:12: listeners[0].tsl: unknown key (did you mean "tls"?)
//	line 12: listeners[0].tsl: ...              (Parse with an empty source)
//	config: accounts[1].provider: unknown ...   (Complete on a Config built in Go)
//
// Messages never contain secret values (client secrets, password hashes).
type Error struct {
	Source string // file name given to Parse or Load; empty for a Config built in Go
	Line   int    // 1-based line of the key, or of its nearest enclosing key; 0 when unknown
	Path   string // key path such as accounts[1].provider; empty for the whole file
	Msg    string // what is wrong and how to fix it
	Err    error  // underlying error (file checks), for errors.Is; may be nil
}

func (e *Error) Error() string {
	var b strings.Builder
	switch {
	case e.Source != "" && e.Line > 0:
		fmt.Fprintf(&b, "%s:%d: ", e.Source, e.Line)
	case e.Source != "":
		fmt.Fprintf(&b, "%s: ", e.Source)
	case e.Line > 0:
		fmt.Fprintf(&b, "line %d: ", e.Line)
	default:
		b.WriteString("config: ")
	}
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(escapeControls(e.Msg))
	return b.String()
}

// escapeControls keeps one error on one line whatever the file held: a
// value with a newline must not forge a second error line in a log.
func escapeControls(s string) string {
	if !strings.ContainsFunc(s, isControl) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if isControl(r) {
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
		} else {
			b.WriteRune(r)
		}
	}
	return b.String()
}

func isControl(r rune) bool {
	return r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == 0x2028 || r == 0x2029
}

func (e *Error) Unwrap() error { return e.Err }

// Errors is every problem found in one pass, sorted by line (problems
// without a line last). Its text is one Error per line. errors.As finds
// each *Error through Unwrap.
type Errors []*Error

func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

// maxErrors caps one report. A real config has a handful of mistakes; a
// garbage or alias-multiplied file could otherwise produce a report of
// megabytes (and take seconds to build).
const maxErrors = 50

// collector gathers errors during one pass and locates them with the
// key positions recorded while parsing.
type collector struct {
	source  string
	pos     map[string]int // key path -> line; nil for a Config built in Go
	errs    Errors
	dropped int // errors beyond maxErrors, counted in the last line
}

func (c *collector) add(path, format string, args ...any) {
	c.addErr(path, nil, format, args...)
}

func (c *collector) addErr(path string, err error, format string, args ...any) {
	c.push(&Error{Line: lineOf(c.pos, path), Path: path, Msg: fmt.Sprintf(format, args...), Err: err})
}

// addAt records an error at a known line (the strict pass knows the node).
func (c *collector) addAt(line int, path, format string, args ...any) {
	c.push(&Error{Line: line, Path: path, Msg: fmt.Sprintf(format, args...)})
}

func (c *collector) push(e *Error) {
	if c.full() {
		c.dropped++
		return
	}
	e.Source = c.source
	c.errs = append(c.errs, e)
}

// full reports whether further errors are only counted.
func (c *collector) full() bool { return len(c.errs) >= maxErrors }

// result returns the collected errors sorted by position, or nil.
func (c *collector) result() error {
	if len(c.errs) == 0 {
		return nil
	}
	sort.SliceStable(c.errs, func(i, j int) bool {
		li, lj := c.errs[i].Line, c.errs[j].Line
		if li == 0 || lj == 0 {
			return li != 0 && lj == 0
		}
		return li < lj
	})
	if c.dropped > 0 {
		c.errs = append(c.errs, &Error{Source: c.source,
			Msg: fmt.Sprintf("%d more errors not shown; fix the ones above first", c.dropped)})
		c.dropped = 0
	}
	return c.errs
}

// lineOf finds the line of path, or of its nearest ancestor that was
// written in the file: a missing required key is reported at the line of
// the list item or section that lacks it.
func lineOf(pos map[string]int, path string) int {
	for pos != nil {
		if l, ok := pos[path]; ok {
			return l
		}
		i := strings.LastIndexAny(path, ".[")
		if i <= 0 {
			return pos[""]
		}
		path = path[:i]
	}
	return 0
}
