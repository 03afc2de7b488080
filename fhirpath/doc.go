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
//
// # Conformance notes
//
//   - The grammar and operator precedence are those of N1: "is"/"as" bind
//     tighter than "|" and comparisons, so "1 > 2 is Boolean" parses as
//     "1 > (2 is Boolean)".
//   - The "as" operator and as() filter each item (like ofType), because R4
//     search parameters apply them to collections, e.g.
//     "(Observation.component.value as Quantity)". The "is" operator on more
//     than one item is an error.
//   - Function arguments that are not iteration expressions are evaluated
//     against the enclosing context ($this), so
//     "Patient.name.given.combine(Patient.name.family)" works.
//   - Dates and times of different precision compare as empty with "=" and
//     the order operators when they agree on their common components, and
//     are not equivalent with "~" (N1 rules; seconds and milliseconds count
//     as one precision).
//   - Decimals are exact (math/big); division keeps at most 8 decimals when
//     the result does not terminate.
//   - Quantities compare and add across units of a small built-in UCUM table
//     (mass, length, volume, time, common concentrations, pressure) and the
//     calendar durations; other different units are incomparable (empty).
//   - iif() with a criterion of several items takes the true branch and
//     not() of several items is false, as the FHIRPath R4 test suite expects.
//   - memberOf() returns empty (no terminology service); conformsTo() answers
//     for the base StructureDefinition of each R4 type and is empty for other
//     profiles; htmlChecks() returns true; trace() writes nothing (it would
//     carry PHI).
//   - The FHIRPath 2.0 aggregates sum(), min(), max() and avg() are provided.
package fhirpath
