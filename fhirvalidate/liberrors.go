package fhirvalidate

import (
	"errors"
	"reflect"
	"strings"
)

// unmarshalErrors extracts the parse errors of google/fhir/go's unmarshaller. They are
// values of an internal package (jsonpbhelper.UnmarshalError, a struct with Path, Details
// and Diagnostics strings, or UnmarshalErrorList, a slice of pointers to it), so they are
// read through reflection. ok is false for any other error, which is an internal failure.
func unmarshalErrors(err error) (list []parseError, ok bool) {
	for e := err; e != nil; e = errors.Unwrap(e) {
		if list, ok := reflectParseErrors(reflect.ValueOf(e)); ok {
			return list, true
		}
	}
	return parseErrorText(err.Error())
}

// parseErrorText reads parse errors from their text, one per line: `error at "<path>":
// <details>`, as the library prints them. It is the fallback should the library's error
// types change shape; ok is false when a line does not have that form.
func parseErrorText(text string) (list []parseError, ok bool) {
	for line := range strings.Lines(text) {
		line = strings.TrimRight(line, "\n")
		rest, found := strings.CutPrefix(line, `error at "`)
		if !found {
			return nil, false
		}
		path, details, found := strings.Cut(rest, `": `)
		if !found {
			return nil, false
		}
		list = append(list, parseError{path: path, details: details})
	}
	return list, len(list) > 0
}

func reflectParseErrors(v reflect.Value) ([]parseError, bool) {
	switch v.Kind() {
	case reflect.Interface:
		if v.IsNil() {
			return nil, false
		}
		return reflectParseErrors(v.Elem())
	case reflect.Pointer:
		if v.IsNil() {
			return nil, false
		}
		pe, ok := structParseError(v.Elem())
		if !ok {
			return nil, false
		}
		return []parseError{pe}, true
	case reflect.Slice:
		list := make([]parseError, 0, v.Len())
		for i := range v.Len() {
			el := v.Index(i)
			if el.Kind() != reflect.Pointer || el.IsNil() {
				return nil, false
			}
			pe, ok := structParseError(el.Elem())
			if !ok {
				return nil, false
			}
			list = append(list, pe)
		}
		return list, len(list) > 0
	}
	return nil, false
}

func structParseError(v reflect.Value) (parseError, bool) {
	if v.Kind() != reflect.Struct {
		return parseError{}, false
	}
	get := func(name string) (string, bool) {
		f := v.FieldByName(name)
		if !f.IsValid() || f.Kind() != reflect.String {
			return "", false
		}
		return f.String(), true
	}
	path, ok1 := get("Path")
	details, ok2 := get("Details")
	diag, ok3 := get("Diagnostics")
	if !ok1 || !ok2 || !ok3 {
		return parseError{}, false
	}
	return parseError{path: path, details: details, diagnostics: diag}, true
}
