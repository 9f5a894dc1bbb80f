package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// DefaultPath is the config file used without -config:
// $OAUTHBRIDGE_CONFIG, else /etc/oauthbridge/config.yaml.
func DefaultPath() string {
	if p := os.Getenv("OAUTHBRIDGE_CONFIG"); p != "" {
		return p
	}
	return "/etc/oauthbridge/config.yaml"
}

// Load reads the file at path, parses it with Parse and checks the files it
// names with CheckFiles. Errors are Errors (one *Error per problem, each
// naming path's line and the key) except when the file cannot be read.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	cfg, err := Parse(data, path)
	if err != nil {
		return nil, err
	}
	if err := cfg.CheckFiles(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// Parse decodes a YAML config strictly (unknown and duplicate keys are
// errors), applies defaults and validates it with Complete. It does not
// touch the filesystem: CheckFiles does that. source names the data in
// error messages (usually the file name); it may be empty.
//
// On error the result is nil and the error is Errors listing every
// problem, sorted by line.
func Parse(data []byte, source string) (*Config, error) {
	c := &collector{source: source, pos: make(map[string]int)}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil && !errors.Is(err, io.EOF) {
		line, msg := syntaxError(err)
		c.addAt(line, "", "%s", msg)
		return nil, c.result()
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		line := extra.Line
		if err != nil {
			line = 0
		}
		c.addAt(line, "", "more than one YAML document (\"---\"): put everything in one")
		return nil, c.result()
	}

	cfg := &Config{}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	if root.Kind != 0 && root.Kind != yaml.DocumentNode {
		w := &walker{c: c}
		w.check(root, reflect.TypeFor[Config](), "")
		if len(c.errs) > 0 {
			return nil, c.result()
		}
		if err := root.Decode(cfg); err != nil {
			// The walk checked every key and value, so this is a case it
			// does not know about; still report it rather than guess.
			c.add("", "%v", err)
			return nil, c.result()
		}
	}
	cfg.source, cfg.pos = source, c.pos
	if err := cfg.Complete(); err != nil {
		return nil, err
	}
	return cfg, nil
}

var yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// syntaxError splits yaml.v3's "yaml: line 3: did not find expected key"
// into the line and the message, so it is formatted like every other error.
func syntaxError(err error) (int, string) {
	m := yamlLineRE.FindStringSubmatch(err.Error())
	if m == nil {
		return 0, "invalid YAML: " + strings.TrimPrefix(err.Error(), "yaml: ")
	}
	line, _ := strconv.Atoi(m[1])
	return line, "invalid YAML: " + m[2]
}
