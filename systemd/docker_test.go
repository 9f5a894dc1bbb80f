package systemd

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
)

// instruction is one Dockerfile instruction with its continuation lines
// joined.
type instruction struct{ cmd, args string }

func parseDockerfile(t *testing.T) []instruction {
	t.Helper()
	b, err := os.ReadFile("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	var out []instruction
	var cur strings.Builder
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.HasSuffix(line, "\\") {
			cur.WriteString(strings.TrimSuffix(line, "\\") + " ")
			continue
		}
		cur.WriteString(line)
		cmd, args, _ := strings.Cut(cur.String(), " ")
		out = append(out, instruction{strings.ToUpper(cmd), strings.Join(strings.Fields(args), " ")})
		cur.Reset()
	}
	return out
}

// TestDockerfileContract pins what the README and the daemon rely on;
// the build itself is TestDockerBuild.
func TestDockerfileContract(t *testing.T) {
	ins := parseDockerfile(t)
	var froms, runs []string
	last := map[string]string{}
	for _, in := range ins {
		switch in.cmd {
		case "FROM":
			froms = append(froms, in.args)
		case "RUN":
			runs = append(runs, in.args)
		}
		last[in.cmd] = in.args // the final stage's wins
	}
	if len(froms) != 2 || !strings.HasSuffix(froms[0], "golang:1.26-bookworm AS build") ||
		froms[1] != "gcr.io/distroless/static-debian12:nonroot" {
		t.Errorf("stages %q: want a golang:1.26-bookworm builder and distroless/static-debian12:nonroot", froms)
	}
	build := strings.Join(runs, "\n")
	for _, want := range []string{"CGO_ENABLED=0", `go build -trimpath -ldflags="-s -w`, "./cmd/oauthbridge"} {
		if !strings.Contains(build, want) {
			t.Errorf("build step lacks %q", want)
		}
	}
	for cmd, want := range map[string]string{
		"USER":        "65532:65532",
		"VOLUME":      "/var/lib/oauthbridge",
		"EXPOSE":      "1143 1110 1587 8025",
		"HEALTHCHECK": `--interval=30s --timeout=5s --start-period=20s --retries=3 CMD ["/usr/local/bin/oauthbridge", "health", "-url", "http://127.0.0.1:8025/healthz"]`,
		"ENTRYPOINT":  `["/usr/local/bin/oauthbridge"]`,
		"CMD":         `["serve"]`,
	} {
		if last[cmd] != want {
			t.Errorf("%s %q, want %q", cmd, last[cmd], want)
		}
	}
	if env := last["ENV"]; !strings.Contains(env, "OAUTHBRIDGE_CONFIG=/etc/oauthbridge/config.yaml") ||
		!strings.Contains(env, "STATE_DIRECTORY=/var/lib/oauthbridge") {
		t.Errorf("ENV %q", env)
	}
}

// dockerignore implements .dockerignore matching (moby/patternmatcher):
// patterns relative to the context root, "**" any number of directories,
// a matched directory excludes what is under it, "!" re-includes, the
// last matching pattern wins.
type dockerignore []struct {
	re     *regexp.Regexp
	negate bool
}

func loadDockerignore(t *testing.T) dockerignore {
	t.Helper()
	b, err := os.ReadFile("../.dockerignore")
	if err != nil {
		t.Fatal(err)
	}
	var d dockerignore
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		neg := strings.HasPrefix(line, "!")
		p := strings.TrimPrefix(strings.TrimPrefix(line, "!"), "/")
		var re strings.Builder
		re.WriteString("^")
		for i := 0; i < len(p); i++ {
			switch {
			case strings.HasPrefix(p[i:], "**/"):
				re.WriteString("(.*/)?")
				i += 2
			case strings.HasPrefix(p[i:], "**"):
				re.WriteString(".*")
				i++
			case p[i] == '*':
				re.WriteString("[^/]*")
			case p[i] == '?':
				re.WriteString("[^/]")
			default:
				re.WriteString(regexp.QuoteMeta(p[i : i+1]))
			}
		}
		re.WriteString("(/.*)?$")
		d = append(d, struct {
			re     *regexp.Regexp
			negate bool
		}{regexp.MustCompile(re.String()), neg})
	}
	return d
}

func (d dockerignore) excluded(path string) bool {
	ex := false
	for _, p := range d {
		if p.re.MatchString(path) {
			ex = !p.negate
		}
	}
	return ex
}

func TestDockerignore(t *testing.T) {
	d := loadDockerignore(t)
	for _, keep := range []string{"go.mod", "go.sum", "cmd/oauthbridge/main.go", "internal/admin/page.html",
		"internal/admin/style.css", "proxy/imap/server.go", "config/config.go", "config.example.yaml"} {
		if d.excluded(keep) {
			t.Errorf("%s is excluded from the build context but the build needs it", keep)
		}
	}
	for _, drop := range []string{".git/HEAD", "config/testdata/fuzz/FuzzParse/x", "proxy/imap/bridge_test.go",
		"oauthbridge", "my-config.yaml", "state/master.key", "etc/alice.secret", "docs/SECURITY.md"} {
		if !d.excluded(drop) {
			t.Errorf("%s is sent to the builder", drop)
		}
	}
}

// TestDockerBuild builds the image and runs it when a Docker engine is
// reachable (the docker client alone is not enough).
func TestDockerBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the image build takes minutes")
	}
	if _, err := exec.LookPath("docker"); err != nil {
		t.Skip("needs the docker client (Debian package docker.io) and a reachable engine")
	}
	info, err := exec.Command("docker", "info", "--format", "{{.ServerVersion}}").CombinedOutput()
	if err != nil {
		t.Skipf("no Docker engine reachable (docker info: %s)", strings.TrimSpace(string(info)))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	b := make([]byte, 4)
	rand.Read(b)
	tag := "oauthbridge-test:" + hex.EncodeToString(b)
	docker := func(args ...string) string {
		t.Helper()
		out, err := exec.CommandContext(ctx, "docker", args...).CombinedOutput()
		if err != nil {
			t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	docker("build", "-t", tag, "..")
	t.Cleanup(func() { exec.Command("docker", "image", "rm", "-f", tag).Run() })

	var img []struct {
		Config struct {
			User        string
			Healthcheck struct{ Test []string }
			Volumes     map[string]struct{}
		}
	}
	if err := json.Unmarshal([]byte(docker("image", "inspect", tag)), &img); err != nil || len(img) != 1 {
		t.Fatalf("image inspect: %v", err)
	}
	c := img[0].Config
	if c.User != "65532:65532" || len(c.Healthcheck.Test) == 0 || c.Healthcheck.Test[0] != "CMD" {
		t.Errorf("image config: user %q, healthcheck %q", c.User, c.Healthcheck.Test)
	}
	if _, ok := c.Volumes["/var/lib/oauthbridge"]; !ok {
		t.Errorf("volumes %v", c.Volumes)
	}
	// The binary runs in the final image (static, no libc needed).
	if out := docker("run", "--rm", tag, "version"); strings.TrimSpace(out) == "" {
		t.Error("oauthbridge version printed nothing")
	}
}
