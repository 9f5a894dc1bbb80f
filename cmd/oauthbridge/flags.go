package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/oauthbridge/oauthbridge/config"
)

// flagSet is a command's flags plus its usage line.
type flagSet struct {
	*flag.FlagSet
	synopsis string // "oauthbridge authorize ACCOUNT [-config FILE] ..."
	about    string // one paragraph on what the command does
}

func newFlagSet(name, synopsis, about string) *flagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are reported once, by report
	return &flagSet{FlagSet: fs, synopsis: synopsis, about: about}
}

// configFlag adds -config with the default path.
func (fs *flagSet) configFlag() *string {
	return fs.String("config", config.DefaultPath(), "config `FILE` (default $OAUTHBRIDGE_CONFIG, else /etc/oauthbridge/config.yaml)")
}

// usage is the command's help text.
func (fs *flagSet) usage() string {
	var b strings.Builder
	fmt.Fprintf(&b, "usage: %s\n", fs.synopsis)
	if fs.about != "" {
		fmt.Fprintf(&b, "\n%s\n", fs.about)
	}
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	if n > 0 {
		b.WriteString("\nflags:\n")
		fs.SetOutput(&b)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
	}
	return b.String()
}

// parse parses args with flags allowed before and after positional
// arguments (Go's flag package stops at the first non-flag): it parses,
// takes one positional, and parses the rest, until nothing is left. "--"
// ends the flags; everything after it is positional. It returns the
// positional arguments, checked against min and max.
func (fs *flagSet) parse(e *env, args []string, min, max int) ([]string, error) {
	var pos []string
	for {
		err := fs.Parse(args)
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(e.stdout, fs.usage())
			return nil, errHelp
		}
		if err != nil {
			return nil, &usageError{msg: err.Error(), usage: fs.usage()}
		}
		rest := fs.Args()
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			pos = append(pos, rest...)
			break
		}
		if len(rest) == 0 {
			break
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
	switch {
	case len(pos) < min:
		return nil, &usageError{msg: "missing argument", usage: fs.usage()}
	case len(pos) > max:
		return nil, &usageError{msg: fmt.Sprintf("unexpected argument %q", pos[max]), usage: fs.usage()}
	}
	return pos, nil
}
