package pushhub_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/pushhub/caddy-pushhub/internal/testenv"
)

// TestBrowserClientTypes: www/pushhub.d.ts declares what www/pushhub.js
// offers, and tsc --strict accepts www/types-check.ts, which uses the whole
// API, and refuses its misuses (its @ts-expect-error lines).
func TestBrowserClientTypes(t *testing.T) {
	js, err := os.ReadFile("www/pushhub.js")
	if err != nil {
		t.Fatal(err)
	}
	dts, err := os.ReadFile("www/pushhub.d.ts")
	if err != nil {
		t.Fatal(err)
	}
	// The public methods of class PushHub, in both.
	jsMethods := methods(t, string(js), `(?m)^  (?:async )?([a-z]\w*)\(`, "export class PushHub ")
	dtsMethods := methods(t, string(dts), `(?m)^  ([a-z]\w*)(?:<[^>]*>)?\(`, "export declare class PushHub ")
	// The constructor, and the typed listeners EventTarget already has.
	inherited := func(m string) bool {
		return m == "constructor" || m == "addEventListener" || m == "removeEventListener"
	}
	jsMethods = slices.DeleteFunc(jsMethods, inherited)
	dtsMethods = slices.DeleteFunc(slices.Compact(dtsMethods), inherited)
	if !slices.Equal(jsMethods, dtsMethods) {
		t.Errorf("PushHub's methods: pushhub.js has %v, pushhub.d.ts declares %v", jsMethods, dtsMethods)
	}

	tsc := testenv.LookPath(t, []string{"tsc"}, "npm install -g typescript; .ci/run installs it")
	cmd := exec.Command(tsc, "--noEmit", "--strict", "--target", "es2022", "--module", "esnext",
		"--moduleResolution", "node", "--lib", "es2022,dom", "types-check.ts")
	cmd.Dir = "www"
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("tsc: %v\n%s", err, out)
	}
}

// methods lists the methods of the class that starts at class in src.
func methods(t *testing.T, src, pattern, class string) []string {
	t.Helper()
	start := strings.Index(src, class)
	if start < 0 {
		t.Fatalf("no %q", class)
	}
	var out []string
	for _, m := range regexp.MustCompile(pattern).FindAllStringSubmatch(src[start:], -1) {
		out = append(out, m[1])
	}
	slices.Sort(out)
	return out
}

// TestBrowserClientPackage: www/package.json lets a bundler import the
// client (an ES module, with its types) and names files that exist.
func TestBrowserClientPackage(t *testing.T) {
	b, err := os.ReadFile("www/package.json")
	if err != nil {
		t.Fatal(err)
	}
	var pkg struct {
		Name    string                     `json:"name"`
		Type    string                     `json:"type"`
		Main    string                     `json:"main"`
		Module  string                     `json:"module"`
		Types   string                     `json:"types"`
		Exports map[string]json.RawMessage `json:"exports"`
		Files   []string                   `json:"files"`
	}
	if err := json.Unmarshal(b, &pkg); err != nil {
		t.Fatalf("package.json: %v", err)
	}
	var root struct{ Types, Default string }
	if err := json.Unmarshal(pkg.Exports["."], &root); err != nil {
		t.Fatalf(`package.json's exports["."]: %v`, err)
	}
	if pkg.Name == "" || pkg.Type != "module" || pkg.Main != "./pushhub.js" || pkg.Module != "./pushhub.js" ||
		pkg.Types != "./pushhub.d.ts" || root.Types != "./pushhub.d.ts" || root.Default != "./pushhub.js" {
		t.Errorf("package.json = %s, want an ES module whose entry is ./pushhub.js with ./pushhub.d.ts", b)
	}
	for _, f := range append(pkg.Files, pkg.Main, pkg.Types) {
		if _, err := os.Stat(filepath.Join("www", f)); err != nil {
			t.Errorf("package.json names %s: %v", f, err)
		}
	}
}
