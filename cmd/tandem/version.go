package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"runtime/debug"
)

// versionInfo is what `tandem version` reports, from the build info Go
// embeds in the binary.
type versionInfo struct {
	Module   string `json:"module"`
	Version  string `json:"version"`            // the module's version: v1.2.3, or (devel) for a build of a checkout
	Revision string `json:"revision,omitempty"` // the VCS revision of a build of a checkout
	Time     string `json:"time,omitempty"`     // the revision's commit time
	Modified bool   `json:"modified,omitempty"` // the checkout had uncommitted changes
	Go       string `json:"go"`
}

func buildVersion() versionInfo {
	v := versionInfo{Module: "github.com/tandemdb/tandem", Version: "(unknown)"}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return v
	}
	v.Go = bi.GoVersion
	v.Module, v.Version = bi.Main.Path, bi.Main.Version
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			v.Revision = s.Value
		case "vcs.time":
			v.Time = s.Value
		case "vcs.modified":
			v.Modified = s.Value == "true"
		}
	}
	return v
}

func runVersion(_ context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("version", stderr)
	setUsage(fs, "tandem version [--json]",
		"Prints the module version and, for a build of a checkout, the VCS revision\n"+
			"it was built from.")
	asJSON := fs.Bool("json", false, "print the version as JSON")
	if ok, code := parseFlags(fs, args); !ok {
		return code
	}
	v := buildVersion()
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(v); err != nil {
			fmt.Fprintf(stderr, "tandem version: %v\n", err)
			return 2
		}
		return 0
	}
	fmt.Fprintf(stdout, "tandem %s", v.Version)
	if v.Revision != "" {
		fmt.Fprintf(stdout, " (revision %s", v.Revision)
		if v.Time != "" {
			fmt.Fprintf(stdout, ", %s", v.Time)
		}
		if v.Modified {
			fmt.Fprint(stdout, ", modified")
		}
		fmt.Fprint(stdout, ")")
	}
	fmt.Fprintf(stdout, " %s %s\n", v.Module, v.Go)
	return 0
}
