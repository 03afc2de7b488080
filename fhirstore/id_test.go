package fhirstore_test

import (
	"strings"
	"testing"

	"github.com/vigil-health/vigil/fhirstore"
)

func TestValidID(t *testing.T) {
	for _, tc := range []struct {
		id   string
		want bool
	}{
		{"a", true},
		{"ABC-1.2", true},
		{"01a212b7-29d1-7c19-afa9-9961a797aa6f", true},
		{strings.Repeat("x", 64), true},
		{strings.Repeat("x", 65), false},
		{"", false},
		{"a_b", false},
		{"a/b", false},
		{"a b", false},
		{"é", false},
		{"a\n", false},
	} {
		if got := fhirstore.ValidID(tc.id); got != tc.want {
			t.Errorf("ValidID(%q) = %v, want %v", tc.id, got, tc.want)
		}
	}
}
