// Command oauthbridge lets mail clients that only know passwords use Gmail
// and other OAuth-only providers: a local IMAP, POP3 and SMTP bridge that
// logs in upstream with XOAUTH2 and owns the tokens.
//
//	oauthbridge serve          [-config FILE]         run the daemon (foreground, logs to stderr)
//	oauthbridge demo                                  run the daemon against a built-in fake Gmail
//	oauthbridge authorize ACCOUNT [-config FILE] [--no-browser] [--device]
//	oauthbridge hash-password  [--stdin]              print an argon2id hash for a local app password
//	oauthbridge status         [-config FILE] [--json]
//	oauthbridge check          [-config FILE] [--login ACCOUNT]
//	oauthbridge version
//	oauthbridge health         [-url URL]             exit 0 when the daemon's /healthz says so
//
// Exit codes: 0 ok, 1 runtime failure, 2 usage or config error.
//
// This package only parses, wires and handles signals; the daemon is
// internal/daemon, everything protocol-related is under proxy/.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/oauthbridge/oauthbridge/config"
)

const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2 // usage or config error
)

const usage = `usage: oauthbridge COMMAND [flags]

commands:
  serve          [-config FILE]                   run the daemon (foreground, logs to stderr)
  demo           [--free-ports]                   run the daemon against a built-in fake Gmail; print how to connect
  authorize      ACCOUNT [-config FILE] [--no-browser] [--device]
                                                  obtain consent and store tokens for ACCOUNT
  hash-password  [--stdin]                        print an argon2id hash for a local app password
  status         [-config FILE] [--json]          accounts, token state, expiry, last error, sessions
  check          [-config FILE] [--login ACCOUNT] validate the config; optionally log in upstream
  version                                         print the version
  health         [-url URL]                       probe a running daemon's /healthz (container health checks)

The config file is -config FILE, else $OAUTHBRIDGE_CONFIG, else
/etc/oauthbridge/config.yaml. Flags take one or two dashes and may come
before or after ACCOUNT. "oauthbridge COMMAND -h" describes a command.
`

// env is what a command gets from the process, so tests can run commands
// in-process too.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
}

type command struct {
	run func(e *env, args []string) error
}

var commands = map[string]command{
	"serve":         {runServe},
	"demo":          {runDemo},
	"authorize":     {runAuthorize},
	"hash-password": {runHashPassword},
	"status":        {runStatus},
	"check":         {runCheck},
	"version":       {runVersion},
	"health":        {runHealth},
}

func main() {
	os.Exit(run(os.Args[1:], &env{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr}))
}

// run executes one command line and returns the exit code.
func run(args []string, e *env) int {
	if len(args) == 0 {
		fmt.Fprint(e.stderr, usage)
		return exitUsage
	}
	name := args[0]
	switch name {
	case "help", "-h", "-help", "--help":
		fmt.Fprint(e.stdout, usage)
		return exitOK
	}
	cmd, ok := commands[name]
	if !ok {
		fmt.Fprintf(e.stderr, "oauthbridge: unknown command %q\n\n%s", name, usage)
		return exitUsage
	}
	err := cmd.run(e, args[1:])
	return report(e.stderr, name, err)
}

// usageError is a command line that does not parse; its usage text is
// printed with it.
type usageError struct {
	msg   string
	usage string
}

func (u *usageError) Error() string { return u.msg }

// configError wraps a failure to load or validate the config file.
type configError struct{ err error }

func (c *configError) Error() string { return c.err.Error() }
func (c *configError) Unwrap() error { return c.err }

// errHelp is returned for -h: usage on stdout, exit 0.
var errHelp = errors.New("help requested")

// exitError carries an exit code whose message was already printed.
type exitError struct{ code int }

func (e *exitError) Error() string { return fmt.Sprintf("exit %d", e.code) }

func report(w io.Writer, name string, err error) int {
	if err == nil {
		return exitOK
	}
	var ue *usageError
	var ce *configError
	var xe *exitError
	var cfgErrs config.Errors
	var cfgErr *config.Error
	switch {
	case errors.Is(err, errHelp):
		return exitOK
	case errors.As(err, &ue):
		if ue.msg != "" {
			fmt.Fprintf(w, "oauthbridge %s: %s\n", name, ue.msg)
		}
		fmt.Fprint(w, ue.usage)
		return exitUsage
	case errors.As(err, &xe):
		return xe.code
	case errors.As(err, &ce), errors.As(err, &cfgErrs), errors.As(err, &cfgErr):
		printLines(w, name, err)
		return exitUsage
	default:
		printLines(w, name, err)
		return exitFailure
	}
}

// printLines prints a (possibly multi-line, as config.Errors are) error,
// each line prefixed so it stands alone in a log.
func printLines(w io.Writer, name string, err error) {
	for _, line := range strings.Split(err.Error(), "\n") {
		fmt.Fprintf(w, "oauthbridge %s: %s\n", name, line)
	}
}

// loadConfig loads path; failures are config errors (exit 2).
func loadConfig(path string) (*config.Config, error) {
	cfg, err := config.Load(path)
	if err != nil {
		return nil, &configError{err}
	}
	return cfg, nil
}
