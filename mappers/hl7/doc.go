// Package hl7map maps HL7 v2 messages to FHIR R4 resources and FHIR
// Observations back to HL7 v2 ORU^R01 messages. Like the rest of package
// mappers it is pure: no I/O, no database and no clock (the caller passes the
// current time in the options).
//
// # Inbound
//
// MapMessage turns one parsed message into a Result: FHIR JSON trees
// (map[string]any) in dependency order, each with a "urn:uuid:" fullUrl that
// the other entries reference, as in a transaction Bundle, and the match
// condition the caller uses to create the resource only once or to update it.
//
//   - ORU^R01 from a device (IHE PCD-01, recognised by MSH-21 IHE_PCD_001 or
//     an MDC-coded OBX-3): Patient (PID), Encounter (PV1, only when PV1-19
//     gives a visit number to match it by), one Device per equipment
//     identifier (OBX-18, typed by the MDC code of the MDS row), and one
//     Observation per valued metric row, built by mappers.Observation so that
//     it is the very Observation that ingest builds for the same reading:
//     same deterministic identifier, codes, vital-signs profile and value.
//     The systolic, diastolic and mean rows of one blood pressure measurement
//     (same device, channel and time) become one panel. Rows without a value
//     (the MDS, VMD and CHAN rows that describe the device hierarchy) are not
//     Observations, and the OBR of a device report (a monitoring session) is
//     not a DiagnosticReport. A row without OBX-18 belongs to the device of
//     its MDS row, else to the gateway when MSH-3 carries an EUI-64.
//   - ORU^R01 from a laboratory: one DiagnosticReport per OBR and one
//     Observation per OBX (LOINC or local codes, UCUM units, reference range,
//     interpretation, notes).
//   - ADT^A01, A04, A08, A28, A31 and A03: Patient, updated when one with the
//     same identifier exists, and Encounter, matched by visit number (A01
//     in-progress, A04 arrived, A03 finished with its period end from PV1-45,
//     else EVN-6, else EVN-2).
//
// Patients, Encounters and Devices are matched by their first identifier
// (PID-3, PV1-19, OBX-18); Observations by their deterministic identifier.
// ORU messages create a Patient or Encounter only when none matches (results
// do not overwrite registration data); ADT messages update them. Device
// Observations are updated when their status is a correction (amended,
// corrected, entered-in-error, cancelled); laboratory Observations and
// DiagnosticReports always, as results move from preliminary to final.
//
// OBX-11 maps to the Observation status as the v2-to-FHIR ConceptMap of
// table 0085 does: F and U final, P, R and S preliminary, C corrected, A and
// B amended, D and W entered-in-error, X and N cancelled, I and O registered.
//
// # Identifier systems
//
// An identifier's system comes from its assigning authority (an HD): the
// Options.Systems entry for the HD's namespace when there is one, else
// "urn:oid:<universal id>" when the universal ID type is ISO,
// "urn:uuid:<universal id>" for UUID, the universal id itself for URI, and
// else "urn:vigil:hl7:<namespace>" (the namespace percent-encoded). An
// identifier without an assigning authority is taken to be assigned by the
// sending facility (MSH-4). Local code systems of coded fields (not one of
// the well-known names of HL7 table 0396 such as LN, SCT, UCUM, MDC) become
// "urn:vigil:hl7:codesystem:<name>".
//
// # Value types
//
// OBX-2 decides the value: NM is valueQuantity; ST, TX and FT valueString;
// CWE, CE, CNE and CF valueCodeableConcept; SN valueQuantity with a
// comparator, valueRange (1-10) or valueRatio (1:128, 1/2); DTM, TS and DT
// valueDateTime; TM valueTime. NA (a numeric array) becomes one component
// per element, each with the row's code and unit, because a bare array
// carries no sampling period for a SampledData. Other types are refused
// with a table 0357 code 103 error at OBX-2.
//
// # Errors
//
// MapMessage fails with a *MappingError listing every problem as an
// *hl7v2.Error with its location and table 0357 code: 200 and 201 for a
// message type or event this package does not map (the listener answers AR),
// 101 for a missing required field, 102 for a value of the wrong type
// (AE). hl7v2.AsError finds the first of them; MappingError.Problems gives
// all, for NewACK.
//
// # Outbound
//
// EncodeORU writes an Observation (and optionally an alert) as an IHE PCD-01
// style ORU^R01 in HL7 v2.6, the version PCD-01 profiles: MDC code first
// with LOINC as the alternate code, MDC unit with UCUM as the alternate, and
// the EUI-64 of the device in OBX-18. MapMessage reads it back to the same
// Observation.
package hl7map
