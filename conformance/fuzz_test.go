package conformance

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// seedScripts adds the suite's TestScripts to a fuzz corpus.
func seedScripts(f *testing.F) {
	scripts, _ := FindScripts(filepath.Join("..", "testdata", "testscripts"))
	for _, p := range scripts {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
}

// FuzzRunScript feeds arbitrary TestScripts to the engine: it must refuse or run them
// without panicking. The base URL is unroutable, so no request leaves the machine.
func FuzzRunScript(f *testing.F) {
	seedScripts(f)
	f.Add([]byte(`{"resourceType":"TestScript","variable":[{"name":"v","path":"$.a[0"}],"test":[{"action":[{"operation":{"url":"${v}"}}]}]}`))
	r := &Runner{Base: "http://127.0.0.1:1/fhir"}
	f.Fuzz(func(t *testing.T, b []byte) {
		res, err := r.RunScript(context.Background(), b, "")
		if err == nil && res.Report == nil {
			t.Fatal("no TestReport")
		}
	})
}

// FuzzPath checks that any path on any JSON document evaluates or fails cleanly.
func FuzzPath(f *testing.F) {
	f.Add("$.name[0].family", pathDoc)
	f.Add("Patient.name[*].given", pathDoc)
	f.Add("$['odd key'].v", pathDoc)
	f.Add("[", "[]")
	f.Fuzz(func(t *testing.T, path, doc string) {
		tree, err := parseTree([]byte(doc))
		if err != nil {
			return
		}
		pathStrings(path, tree)
	})
}

// FuzzSubstitute checks that substitution never panics and leaves text without ${ alone.
func FuzzSubstitute(f *testing.F) {
	f.Add("/${a}/x", true)
	f.Add("${", false)
	f.Add("${}${a}", true)
	lookup := func(name string) (string, bool, error) { return `"` + name + `"`, name != "", nil }
	f.Fuzz(func(t *testing.T, s string, jsonEscape bool) {
		out, err := substitute(s, lookup, jsonEscape, true)
		if err != nil {
			t.Fatalf("substitute(%q): %v", s, err)
		}
		if !containsVar(s) && out != s {
			t.Fatalf("substitute(%q) = %q without variables", s, out)
		}
	})
}

func containsVar(s string) bool {
	for i := 0; i+1 < len(s); i++ {
		if s[i] == '$' && s[i+1] == '{' {
			return true
		}
	}
	return false
}
