package conformance

import (
	"os"
	"path/filepath"
	"testing"
)

// TestIsTestScript checks which JSON files under a script directory are taken for scripts:
// TestScripts and broken files (to be reported), not fixtures of other types nor JSON that
// is not an object (a JSON Patch document is an array).
func TestIsTestScript(t *testing.T) {
	tests := []struct {
		name, content string
		want          bool
	}{
		{"script", `{"resourceType":"TestScript"}`, true},
		{"fixture", `{"resourceType":"Patient"}`, false},
		{"json patch", `[{"op":"replace","path":"/status","value":"final"}]`, false},
		{"broken", `{"resourceType":`, true},
		{"wrong type", `{"resourceType":5}`, true},
		{"not json", `[not json`, true},
	}
	dir := t.TempDir()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(dir, tt.name+".json")
			if err := os.WriteFile(p, []byte(tt.content), 0o644); err != nil {
				t.Fatal(err)
			}
			got, err := isTestScript(p)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("isTestScript(%s) = %v, want %v", tt.content, got, tt.want)
			}
		})
	}
}
