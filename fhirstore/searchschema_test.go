package fhirstore

import (
	"regexp"
	"testing"
)

func TestSchemaFingerprint(t *testing.T) {
	fp := SchemaFingerprint()
	if !regexp.MustCompile(`^[0-9a-f]{16}$`).MatchString(fp) {
		t.Fatalf("fingerprint %q: want 16 hex digits (it names databases)", fp)
	}
	if again := SchemaFingerprint(); again != fp {
		t.Errorf("fingerprint not stable: %q then %q", fp, again)
	}
	saved := migrations
	t.Cleanup(func() { migrations = saved })
	tests := []struct {
		name   string
		change func(ms []migration) []migration
	}{
		{"edited DDL, same version", func(ms []migration) []migration {
			last := ms[len(ms)-1]
			stmts := append(append([]string{}, last.stmts...), `CREATE INDEX extra ON resource (id)`)
			ms[len(ms)-1] = migration{last.version, last.name, stmts}
			return ms
		}},
		{"renamed step", func(ms []migration) []migration {
			ms[0] = migration{ms[0].version, ms[0].name + "!", ms[0].stmts}
			return ms
		}},
		{"statement moved between steps", func(ms []migration) []migration {
			a, b := ms[0], ms[1]
			ms[0] = migration{a.version, a.name, a.stmts[:len(a.stmts)-1]}
			ms[1] = migration{b.version, b.name, append([]string{a.stmts[len(a.stmts)-1]}, b.stmts...)}
			return ms
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			migrations = tc.change(append([]migration{}, saved...))
			defer func() { migrations = saved }()
			if got := SchemaFingerprint(); got == fp {
				t.Errorf("fingerprint unchanged (%s)", got)
			}
		})
	}
}
