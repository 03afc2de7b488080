// Package fhirpath is a FHIRPath (N1, http://hl7.org/fhirpath/N1) evaluator
// for FHIR R4 resources held as decoded JSON, with the FHIR-specific
// additions of R4 (resolve(), extension(url), %resource, %rootResource,
// hasValue(), getValue(), htmlChecks() ...), a compact R4 type model
// generated from the official StructureDefinitions, and FHIRPath Patch
// (ApplyPatch).
//
// Resources are evaluated as the tree produced by encoding/json decoding with
// UseNumber (map[string]any, []any, string, json.Number, bool, nil); ParseJSON
// produces it. An Expression is compiled once and is safe for concurrent use:
//
//	expr := fhirpath.MustCompile("Observation.value.as(Quantity).value")
//	res, err := fhirpath.ParseJSON(body)
//	out, err := expr.Evaluate(res, nil)
//
// Every Value of a result knows its FHIR type (Type), its JSON node (Data)
// and where it lives in the input (Path), which search indexing and patching
// build on.
package fhirpath
