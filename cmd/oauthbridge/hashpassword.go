package main

import (
	"bufio"
	"bytes"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/term"

	"github.com/oauthbridge/oauthbridge/proxy"
)

// maxPasswordLen bounds what --stdin reads: an app password, not a file.
const maxPasswordLen = 1024

func runHashPassword(e *env, args []string) error {
	fs := newFlagSet("hash-password", "oauthbridge hash-password [--stdin]",
		"Print an argon2id hash of a local app password, for the passwords: list of an account.\n"+
			"On a terminal the password is asked twice without echo; --stdin reads one line instead.")
	fromStdin := fs.Bool("stdin", false, "read the password from the first line of standard input")
	if _, err := fs.parse(e, args, 0, 0); err != nil {
		return err
	}
	var pw string
	var err error
	if *fromStdin {
		pw, err = readPasswordLine(e.stdin)
	} else {
		pw, err = askPassword(e)
	}
	if err != nil {
		return err
	}
	h, err := proxy.HashPassword(pw)
	if err != nil {
		return err
	}
	fmt.Fprintln(e.stdout, h)
	return nil
}

// readPasswordLine reads the first line of r, without its line ending.
func readPasswordLine(r io.Reader) (string, error) {
	br := bufio.NewReaderSize(io.LimitReader(r, maxPasswordLen+2), maxPasswordLen+2)
	line, err := br.ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("reading the password: %w", err)
	}
	if !strings.HasSuffix(line, "\n") && len(line) > maxPasswordLen {
		return "", fmt.Errorf("password longer than %d bytes", maxPasswordLen)
	}
	pw := strings.TrimRight(line, "\r\n")
	if pw == "" {
		return "", errors.New("empty password on standard input")
	}
	return pw, nil
}

// askPassword reads the password twice from the terminal without echo.
func askPassword(e *env) (string, error) {
	f, ok := e.stdin.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return "", &usageError{msg: "standard input is not a terminal: use --stdin to read the password from it",
			usage: "usage: oauthbridge hash-password [--stdin]\n"}
	}
	fd := int(f.Fd())
	fmt.Fprint(e.stderr, "App password: ")
	first, err := term.ReadPassword(fd)
	fmt.Fprintln(e.stderr)
	if err != nil {
		return "", fmt.Errorf("reading the password: %w", err)
	}
	if len(bytes.TrimSpace(first)) == 0 {
		return "", errors.New("empty password")
	}
	fmt.Fprint(e.stderr, "Again: ")
	second, err := term.ReadPassword(fd)
	fmt.Fprintln(e.stderr)
	if err != nil {
		return "", fmt.Errorf("reading the password: %w", err)
	}
	if subtle.ConstantTimeCompare(first, second) != 1 {
		return "", errors.New("the two passwords differ; nothing was printed")
	}
	return string(first), nil
}
