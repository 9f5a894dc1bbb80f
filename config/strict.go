package config

import (
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// The strict pass walks the YAML node tree against the Go schema before
// anything is decoded. yaml.v3's KnownFields reports "field tsl not found in
// type config.Listener"; walking the tree ourselves gives the key path and
// line instead, finds every problem in one pass rather than the first, and
// catches duplicate keys, which yaml.v3 accepts silently in a yaml.Node.

// maxNodes bounds the walk. Aliases make a small document describe an
// exponentially large tree ("billion laughs"); a real config has a few
// hundred nodes.
const maxNodes = 100000

var durationType = reflect.TypeFor[Duration]()

type walker struct {
	c       *collector
	visited int // nodes walked, aliases counted each time they are followed
}

// check walks n as a value of type t at path, recording the line of every
// key it meets in w.c.pos.
func (w *walker) check(n *yaml.Node, t reflect.Type, path string) {
	if !w.tick(path) {
		return
	}
	if n.Kind == yaml.AliasNode {
		if n.Alias != nil {
			w.check(n.Alias, t, path)
		}
		return
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return // an empty value leaves the default
	}
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case t == durationType:
		var d Duration
		if err := n.Decode(&d); err != nil {
			w.c.add(path, "%v", err)
		}
	case t.Kind() == reflect.Struct:
		if !w.want(n, yaml.MappingNode, path, "a mapping of keys (key: value)") {
			return
		}
		w.mapping(n, path, func(key string, k, v *yaml.Node) {
			f, ok := fieldByTag(t, key)
			if !ok {
				if w.c.full() {
					w.c.dropped++ // only counted: skip the cost of a suggestion
					return
				}
				w.c.add(joinPath(path, key), "unknown key (%s)", suggest(key, tagsOf(t)))
				return
			}
			w.check(v, f.Type, joinPath(path, key))
		})
	case t.Kind() == reflect.Map:
		if !w.want(n, yaml.MappingNode, path, "a mapping of names to settings") {
			return
		}
		w.mapping(n, path, func(key string, k, v *yaml.Node) {
			w.check(v, t.Elem(), joinPath(path, key))
		})
	case t.Kind() == reflect.Slice:
		if !w.want(n, yaml.SequenceNode, path, "a list ([a, b] or one \"- item\" per line)") {
			return
		}
		for i, item := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			w.c.pos[p] = item.Line
			w.check(item, t.Elem(), p)
		}
	default:
		w.scalar(n, t, path)
	}
}

// tick counts a visited node and reports whether the walk may go on;
// the first time the budget runs out it records why.
func (w *walker) tick(path string) bool {
	w.visited++
	if w.visited == maxNodes {
		w.c.add(path, "document too large or too deeply aliased (more than %d nodes)", maxNodes)
	}
	return w.visited < maxNodes
}

// want reports whether n (after aliases) has kind k, recording an error
// naming what was expected when it has not.
func (w *walker) want(n *yaml.Node, k yaml.Kind, path, what string) bool {
	if n.Kind == k {
		return true
	}
	w.c.addAt(n.Line, path, "want %s, got %s", what, describe(n))
	return false
}

// mapping calls fn for each key of n, following merge keys ("<<: *base")
// and reporting duplicates. Keys written in n itself win over merged ones,
// as in YAML's merge rule, so only those are checked for duplicates.
func (w *walker) mapping(n *yaml.Node, path string, fn func(key string, k, v *yaml.Node)) {
	seen := make(map[string]int)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.Tag == "!!merge" {
			w.merge(v, path, fn)
			continue
		}
		if k.Kind != yaml.ScalarNode {
			w.c.addAt(k.Line, path, "keys must be plain names, got %s", describe(k))
			continue
		}
		key := k.Value
		p := joinPath(path, key)
		if first, dup := seen[key]; dup {
			w.c.addAt(k.Line, p, "duplicate key (first at line %d)", first)
			continue
		}
		seen[key] = k.Line
		w.c.pos[p] = k.Line
		fn(key, k, v)
	}
}

func (w *walker) merge(v *yaml.Node, path string, fn func(key string, k, v *yaml.Node)) {
	if !w.tick(path) {
		return
	}
	switch v.Kind {
	case yaml.AliasNode:
		if v.Alias != nil {
			w.merge(v.Alias, path, fn)
		}
	case yaml.MappingNode:
		w.mapping(v, path, fn)
	case yaml.SequenceNode:
		for _, item := range v.Content {
			w.merge(item, path, fn)
		}
	default:
		w.c.addAt(v.Line, path, "<< must merge a mapping, got %s", describe(v))
	}
}

// scalar checks a leaf by decoding it alone, so a type error names its
// path instead of surfacing later from yaml.v3 as "cannot unmarshal".
func (w *walker) scalar(n *yaml.Node, t reflect.Type, path string) {
	if n.Kind != yaml.ScalarNode {
		w.c.addAt(n.Line, path, "want a single value, got %s", describe(n))
		return
	}
	switch t.Kind() {
	case reflect.String:
		return // any scalar: "1.0" stays the text "1.0"
	case reflect.Bool:
		var b bool
		if n.Decode(&b) != nil {
			w.c.add(path, "want true or false, got %q", n.Value)
		}
	case reflect.Int, reflect.Int64:
		var i int64
		if n.Decode(&i) != nil {
			w.c.add(path, "want a whole number, got %q", n.Value)
		}
	default:
		v := reflect.New(t)
		if n.Decode(v.Interface()) != nil {
			w.c.add(path, "invalid value %q", n.Value)
		}
	}
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return strconv.Quote(n.Value)
	case yaml.AliasNode:
		return "an alias"
	}
	return "nothing"
}

func joinPath(path, key string) string {
	if !isPlainKey(key) {
		key = strconv.Quote(key)
	}
	if path == "" {
		return key
	}
	return path + "." + key
}

func isPlainKey(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-' || r == '@') {
			return false
		}
	}
	return true
}

// yamlTag is the key name of f, or "" when f is not in the YAML schema.
func yamlTag(f reflect.StructField) string {
	if !f.IsExported() {
		return ""
	}
	tag, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	if tag == "-" {
		return ""
	}
	if tag == "" {
		return strings.ToLower(f.Name) // yaml.v3's default key
	}
	return tag
}

func fieldByTag(t reflect.Type, key string) (reflect.StructField, bool) {
	for i := range t.NumField() {
		f := t.Field(i)
		if yamlTag(f) == key {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

func tagsOf(t reflect.Type) []string {
	var tags []string
	for i := range t.NumField() {
		if tag := yamlTag(t.Field(i)); tag != "" {
			tags = append(tags, tag)
		}
	}
	return tags
}

// suggest names the closest known key ("did you mean ...?") or, when none
// is close, lists them all.
func suggest(key string, known []string) string {
	best, bestD := "", 3
	lk := strings.ToLower(key)
	for _, k := range known {
		d := editDistance(lk, k)
		if d < bestD && d < len(key) {
			best, bestD = k, d
		}
	}
	if best != "" {
		return fmt.Sprintf("did you mean %q?", best)
	}
	sorted := append([]string(nil), known...)
	sort.Strings(sorted)
	return "known: " + strings.Join(sorted, ", ")
}

// editDistance is the optimal string alignment distance: insertions,
// deletions, substitutions and transpositions of adjacent characters
// ("tsl" -> "tls" is 1) each cost 1.
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 1 << 20 // no suggestion for absurd keys; keeps the cost bounded
	}
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}
