// Package hl7v2 reads, builds and writes HL7 version 2 messages (v2.5.1 control rules, IHE PCD-01
// device observation reports) and builds their acknowledgments.
//
// A Message keeps its own delimiters and the raw, escaped text of every field, so that parsing
// and encoding a well-formed message gives back the same bytes. The hierarchy is
// Message -> Segment -> Field -> Repetition -> Component -> Subcomponent, numbered from 1 as in
// HL7: MSH-1 is the field separator and MSH-2 the encoding characters. Escape sequences are
// decoded when a value is read, after the text has been split, so an escaped delimiter never
// splits a value; the explicit null `""` is kept apart from an empty value.
//
// Errors are *Error values that carry an HL7 location and a table 0357 code, so that an
// acknowledgment can be built from any of them with NewACK. Error texts never quote message
// content, so they can be logged without leaking PHI.
//
// The package knows nothing of FHIR; the mappers package turns messages into resources.
package hl7v2
