package server_test

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-health/vigil/fhirstore/storetest"
	"github.com/vigil-health/vigil/internal/specexamples"
)

// checkExampleRoundTrip POSTs one example: a valid one must be created and read back equal
// to what was sent (but for id and meta), an invalid one refused with 400 naming the
// element.
func checkExampleRoundTrip(t *testing.T, ts *testServer, path string) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sent, err := decode(raw)
	if err != nil {
		t.Fatalf("example is not JSON: %v", err)
	}
	typ, _ := sent["resourceType"].(string)
	r := ts.do(t, http.MethodPost, typ, raw)
	if expr, invalid := specexamples.Invalid[filepath.Base(path)]; invalid {
		r.wantOutcome(t, http.StatusBadRequest, expr)
		return
	}
	r.wantStatus(t, http.StatusCreated)
	loc := r.Header.Get("Location")
	if !strings.HasPrefix(loc, ts.FHIR+"/"+typ+"/") {
		t.Fatalf("Location = %q", loc)
	}
	read := ts.do(t, http.MethodGet, strings.TrimSuffix(loc, "/_history/1"), nil)
	read.wantStatus(t, http.StatusOK)
	if d := diff(withoutMeta(sent), withoutMeta(read.json(t))); d != "" {
		t.Errorf("read back differs from the example (-example +read):\n%s", d)
	}
}

// TestVendoredExamples creates the spec examples vendored in testdata/examples on every
// run, on every backend.
func TestVendoredExamples(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "testdata", "examples", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 12 {
		t.Fatalf("found %d vendored examples, want at least 12", len(files))
	}
	invalid := 0
	for _, f := range files {
		if _, ok := specexamples.Invalid[filepath.Base(f)]; ok {
			invalid++
		}
	}
	if invalid < 2 {
		t.Errorf("found %d invalid vendored examples, want at least 2", invalid)
	}
	forBackends(t, func(t *testing.T, b storetest.Backend) {
		ts := newTestServer(t, b)
		for _, f := range files {
			t.Run(filepath.Base(f), func(t *testing.T) {
				t.Parallel()
				checkExampleRoundTrip(t, ts, f)
			})
		}
	})
}

// TestSpecExamples creates all 713 FHIR R4 examples when VIGIL_EXAMPLES_DIR names their
// folder (absolute, or relative to the repository root or to server/).
func TestSpecExamples(t *testing.T) {
	files := specexamples.All(t)
	forBackends(t, func(t *testing.T, b storetest.Backend) {
		ts := newTestServer(t, b)
		start := time.Now()
		t.Cleanup(func() {
			t.Logf("%d examples on %s in %v", len(files), b.Name, time.Since(start).Round(time.Millisecond))
		})
		for _, f := range files {
			t.Run(filepath.Base(f), func(t *testing.T) {
				t.Parallel()
				checkExampleRoundTrip(t, ts, f)
			})
		}
	})
}
