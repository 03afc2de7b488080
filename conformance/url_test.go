package conformance

import "testing"

// TestIsAbsoluteURL checks that a relative url whose query holds a system URL is not taken
// for an absolute one (it would be sent without the base).
func TestIsAbsoluteURL(t *testing.T) {
	tests := []struct {
		name, url string
		want      bool
	}{
		{"absolute", "http://127.0.0.1:8080/fhir/Patient", true},
		{"absolute with query", "https://example.org/fhir/Observation?code=http://loinc.org|8867-4", true},
		{"relative", "Patient/1", false},
		{"relative with system in query", "Patient/1/Observation?code=http://loinc.org|8867-4", false},
		{"query only", "?_type=Patient&_profile=http://example.org/sd", false},
		{"variable", "${next}", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := isAbsoluteURL(tt.url); got != tt.want {
				t.Errorf("isAbsoluteURL(%q) = %v, want %v", tt.url, got, tt.want)
			}
		})
	}
}
