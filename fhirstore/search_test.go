package fhirstore_test

import (
	"testing"

	"github.com/vigil-health/vigil/fhirstore/storetest"
)

func TestSearch(t *testing.T) {
	for _, b := range storetest.Backends() {
		t.Run(b.Name, func(t *testing.T) { storetest.RunSearch(t, b) })
	}
}
