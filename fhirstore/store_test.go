package fhirstore_test

import (
	"testing"

	"github.com/vigil-health/vigil/fhirstore/storetest"
)

func TestConformance(t *testing.T) {
	for _, b := range storetest.Backends() {
		t.Run(b.Name, func(t *testing.T) { storetest.Run(t, b) })
	}
}
