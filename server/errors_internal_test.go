package server

import (
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/vigil-health/vigil/fhirstore"
)

// Every store error a client can cause maps to the status the FHIR spec gives it, and
// internal failures to 500 without their detail.
func TestErrorMapping(t *testing.T) {
	tests := []struct {
		name   string
		err    error
		status int
		code   string
	}{
		{"not found", fmt.Errorf("read: %w", fhirstore.ErrNotFound), http.StatusNotFound, "not-found"},
		{"gone", fmt.Errorf("read: %w", fhirstore.ErrGone), http.StatusGone, "deleted"},
		{"version conflict", fhirstore.ErrVersionConflict, http.StatusPreconditionFailed, "conflict"},
		{"write conflict", fmt.Errorf("%w: concurrent writes kept colliding", fhirstore.ErrConflict), http.StatusConflict, "conflict"},
		{"invalid", fmt.Errorf("%w: bad id", fhirstore.ErrInvalid), http.StatusBadRequest, "invalid"},
		{"internal", errors.New("disk on fire"), http.StatusInternalServerError, "exception"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fe := asError(tc.err)
			if fe.Status != tc.status || fe.Issues[0].Code != tc.code {
				t.Fatalf("status %d code %s, want %d %s", fe.Status, fe.Issues[0].Code, tc.status, tc.code)
			}
			if tc.status == http.StatusInternalServerError && fe.Issues[0].Diagnostics != "internal server error" {
				t.Fatalf("internal detail leaked: %q", fe.Issues[0].Diagnostics)
			}
		})
	}
}
