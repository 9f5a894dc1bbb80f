package main

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

func runVersion(e *env, args []string) error {
	fs := newFlagSet("version", "oauthbridge version", "Print the version of oauthbridge and of the Go toolchain that built it.")
	if _, err := fs.parse(e, args, 0, 0); err != nil {
		return err
	}
	fmt.Fprintln(e.stdout, versionLine())
	return nil
}

// versionLine is "oauthbridge VERSION (COMMIT, DATE[, modified]) GO OS/ARCH":
// the module version when built with "go install ...@version", else
// "(devel)" with the VCS stamp "go build" records.
func versionLine() string {
	version, vcs := "(devel)", ""
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Main.Version != "" {
			version = bi.Main.Version
		}
		var rev, at, modified string
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
				if len(rev) > 12 {
					rev = rev[:12]
				}
			case "vcs.time":
				at = s.Value
			case "vcs.modified":
				if s.Value == "true" {
					modified = ", modified"
				}
			}
		}
		if rev != "" {
			vcs = fmt.Sprintf(" (%s, %s%s)", rev, at, modified)
		}
	}
	return fmt.Sprintf("oauthbridge %s%s %s %s/%s", version, vcs, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
