package config

import (
	"os"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

const examplePath = "../config.example.yaml"

// TestExampleParses: the shipped example is a valid config (files are not
// checked: it names /etc paths) and warns only about the TLS 1.0 printer
// listener it shows on purpose.
func TestExampleParses(t *testing.T) {
	data, err := os.ReadFile(examplePath)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := Parse(data, "config.example.yaml")
	if err != nil {
		t.Fatalf("the example does not parse:\n%v", err)
	}
	w := cfg.Warnings()
	if len(w) != 1 || !strings.Contains(w[0], "min_tls_version: TLS 1.0 is obsolete") {
		t.Errorf("warnings: %q", w)
	}
	// What the example promises to show.
	var relay, lan bool
	for _, l := range cfg.Listeners {
		relay = relay || l.RelayWithoutAuth != nil
		lan = lan || (!l.IsLoopback() && len(l.Allow) > 0 && l.MinTLSVersion == "1.0")
	}
	providers := map[string]bool{}
	for _, a := range cfg.Accounts {
		providers[a.Provider] = true
	}
	if !relay || !lan || !providers["gmail"] || !providers["outlook"] || !providers["example"] {
		t.Errorf("example lacks a part: relay %v, LAN TLS 1.0 listener %v, providers used %v", relay, lan, providers)
	}
}

// TestExampleDocumentsEveryKey: every YAML key of the schema is written
// as a key in the example, so a new key cannot go undocumented.
func TestExampleDocumentsEveryKey(t *testing.T) {
	data, err := os.ReadFile(examplePath)
	if err != nil {
		t.Fatal(err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	written := map[string]bool{}
	var collect func(n *yaml.Node)
	collect = func(n *yaml.Node) {
		if n.Kind == yaml.MappingNode {
			for i := 0; i+1 < len(n.Content); i += 2 {
				written[n.Content[i].Value] = true
			}
		}
		for _, c := range n.Content {
			collect(c)
		}
	}
	collect(&doc)

	var missing []string
	for _, tag := range schemaTags(reflect.TypeFor[Config](), map[reflect.Type]bool{}) {
		if !written[tag] {
			missing = append(missing, tag)
		}
	}
	if len(missing) > 0 {
		t.Errorf("config.example.yaml does not show these keys: %v", missing)
	}
}

// schemaTags lists every yaml key reachable from t.
func schemaTags(t reflect.Type, seen map[reflect.Type]bool) []string {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Map {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct || t == durationType || seen[t] {
		return nil
	}
	seen[t] = true
	var tags []string
	for i := range t.NumField() {
		f := t.Field(i)
		if tag := yamlTag(f); tag != "" {
			tags = append(tags, tag)
			tags = append(tags, schemaTags(f.Type, seen)...)
		}
	}
	sort.Strings(tags)
	return slices.Compact(tags)
}

func TestSchemaTagsSeesNestedKeys(t *testing.T) {
	tags := schemaTags(reflect.TypeFor[Config](), map[reflect.Type]bool{})
	for _, want := range []string{"state_dir", "relay_without_auth", "from", "rotate_before", "hash", "window"} {
		if !slices.Contains(tags, want) {
			t.Errorf("schemaTags misses %q: %v", want, tags)
		}
	}
	for _, not := range []string{"-", "resolved", "name_", "capem", "sessionlifetimeduration"} {
		if slices.Contains(tags, not) {
			t.Errorf("schemaTags lists %q", not)
		}
	}
}
