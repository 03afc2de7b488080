package fhirpath

import (
	"compress/bzip2"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// syntheaResources loads the resources of up to limit Synthea bundles from
// the directory named by VIGIL_SYNTHEA_DIR (bzip2-compressed FHIR JSON
// Bundles). The test data is large and lives outside the repository, so the
// tests using it skip when the variable is unset.
func syntheaResources(tb testing.TB, limit int) []any {
	tb.Helper()
	dir := os.Getenv("VIGIL_SYNTHEA_DIR")
	if dir == "" {
		tb.Skip("VIGIL_SYNTHEA_DIR not set (e.g. /work/shared/data/synthea)")
	}
	files, err := filepath.Glob(filepath.Join(dir, "*.json.bz2"))
	if err != nil || len(files) == 0 {
		tb.Fatalf("no bundles in %s: %v", dir, err)
	}
	if len(files) > limit {
		files = files[:limit]
	}
	var out []any
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			tb.Fatal(err)
		}
		b, err := io.ReadAll(bzip2.NewReader(fh))
		fh.Close()
		if err != nil {
			tb.Fatalf("%s: %v", f, err)
		}
		bundle, err := ParseJSON(b)
		if err != nil {
			tb.Fatalf("%s: %v", f, err)
		}
		entries, _ := bundle.(map[string]any)["entry"].([]any)
		for _, e := range entries {
			if r, ok := e.(map[string]any)["resource"]; ok {
				out = append(out, r)
			}
		}
	}
	return out
}

func syntheaLimit() int {
	if n, err := strconv.Atoi(os.Getenv("VIGIL_SYNTHEA_BUNDLES")); err == nil && n > 0 {
		return n
	}
	return 10
}

// TestSyntheaSearchParameters evaluates every search parameter of each
// resource's type over real-world-shaped data and expects no errors.
func TestSyntheaSearchParameters(t *testing.T) {
	resources := syntheaResources(t, syntheaLimit())
	byBase := map[string][]*Expression{}
	for _, sp := range loadSearchParams(t) {
		if sp.Expression == "" {
			continue
		}
		e := MustCompile(sp.Expression)
		for _, b := range sp.Base {
			byBase[b] = append(byBase[b], e)
		}
	}
	start := time.Now()
	evals, values := 0, 0
	for _, r := range resources {
		rt, _ := r.(map[string]any)["resourceType"].(string)
		for _, list := range [][]*Expression{byBase[rt], byBase["Resource"], byBase["DomainResource"]} {
			for _, e := range list {
				got, err := e.Evaluate(r, nil)
				if err != nil {
					t.Errorf("%s: %v", rt, err)
					continue
				}
				evals++
				values += len(got)
			}
		}
	}
	elapsed := time.Since(start)
	t.Logf("%d resources, %d evaluations, %d values in %v (%.1f µs per resource)",
		len(resources), evals, values, elapsed, float64(elapsed.Microseconds())/float64(len(resources)))
}
