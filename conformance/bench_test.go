package conformance

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkRunScript measures the engine's own cost per script: the crud create-read
// TestScript (2 operations plus autocreate-free setup, 15 asserts) against the in-memory
// fake server over loopback HTTP.
func BenchmarkRunScript(b *testing.B) {
	path := filepath.Join("..", "testdata", "testscripts", "crud", "create-read.json")
	script, err := os.ReadFile(path)
	if err != nil {
		b.Fatal(err)
	}
	_, base := newFake(b)
	r := &Runner{Base: base}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		res, err := r.RunScript(ctx, script, filepath.Dir(path))
		if err != nil {
			b.Fatal(err)
		}
		if !res.OK() {
			b.Fatalf("script failed:\n%s", summary(res))
		}
	}
}

// BenchmarkEvalPath measures a JSONPath-style lookup on a small resource.
func BenchmarkEvalPath(b *testing.B) {
	tree, err := parseTree([]byte(pathDoc))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := pathStrings("$.name[0].given[1]", tree); err != nil {
			b.Fatal(err)
		}
	}
}
