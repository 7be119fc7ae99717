package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// `tandem version` names the module and the Go it was built with; --json
// says the same as JSON. (A test binary has no VCS stamp to check.)
func TestVersion(t *testing.T) {
	var out, errs bytes.Buffer
	if code := run(t.Context(), []string{"version"}, &out, &errs); code != 0 {
		t.Fatalf("exit %d: %s", code, errs.String())
	}
	if !strings.HasPrefix(out.String(), "tandem ") || !strings.Contains(out.String(), "go1.") {
		t.Errorf("version = %q", out.String())
	}
	out.Reset()
	if code := run(t.Context(), []string{"version", "--json"}, &out, &errs); code != 0 {
		t.Fatalf("--json: exit %d: %s", code, errs.String())
	}
	var v versionInfo
	if err := json.Unmarshal(out.Bytes(), &v); err != nil || v.Version == "" || !strings.HasPrefix(v.Go, "go1.") {
		t.Errorf("--json = %q (%v)", out.String(), err)
	}
	if code := run(t.Context(), []string{"version", "extra"}, &out, &errs); code != 2 {
		t.Errorf("version with an argument: exit %d, want 2", code)
	}
}
