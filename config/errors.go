package config

import (
	"fmt"
	"sort"
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
	b.WriteString(e.Msg)
	return b.String()
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

// collector gathers errors during one pass and locates them with the
// key positions recorded while parsing.
type collector struct {
	source string
	pos    map[string]int // key path -> line; nil for a Config built in Go
	errs   Errors
}

func (c *collector) add(path, format string, args ...any) {
	c.addErr(path, nil, format, args...)
}

func (c *collector) addErr(path string, err error, format string, args ...any) {
	c.errs = append(c.errs, &Error{
		Source: c.source,
		Line:   lineOf(c.pos, path),
		Path:   path,
		Msg:    fmt.Sprintf(format, args...),
		Err:    err,
	})
}

// addAt records an error at a known line (the strict pass knows the node).
func (c *collector) addAt(line int, path, format string, args ...any) {
	c.errs = append(c.errs, &Error{Source: c.source, Line: line, Path: path, Msg: fmt.Sprintf(format, args...)})
}

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
