package fhirpath

//go:generate go run ./internal/gen -in /tmp/package/dist/fhir/r4 -out model.txt.gz
