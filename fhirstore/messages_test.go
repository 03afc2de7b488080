package fhirstore_test

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/vigil-health/vigil/fhirstore"
	"github.com/vigil-health/vigil/fhirstore/storetest"
)

func TestMessageLog(t *testing.T) {
	for _, b := range storetest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			t.Parallel()
			st, _ := storetest.Open(t, b)
			ctx := context.Background()
			raw := []byte("MSH|^~\\&|MON|ICU|||20260101||ORU^R01|C1|P|2.6\r\xE9") // not UTF-8

			// First delivery: claimed, processed, recorded with its resources.
			var m *fhirstore.InboundMessage
			err := st.InTx(ctx, func(tx *fhirstore.Tx) error {
				m = &fhirstore.InboundMessage{Sender: "MON|ICU", ControlID: "C1", Type: "ORU^R01", Raw: raw}
				prev, err := tx.ClaimMessage(ctx, m)
				if err != nil || prev != nil {
					t.Fatalf("first claim = %v, %v; want nil, nil", prev, err)
				}
				p, err := tx.Create(ctx, "Patient", map[string]any{"resourceType": "Patient"})
				if err != nil {
					return err
				}
				m.Status, m.AckCode, m.Ack, m.Resources = fhirstore.MessageProcessed, "AA", []byte("ACK1"), []string{"Patient/" + p.ID}
				return tx.FinishMessage(ctx, m)
			})
			if err != nil {
				t.Fatal(err)
			}
			// A resend finds the processed entry.
			err = st.InTx(ctx, func(tx *fhirstore.Tx) error {
				prev, err := tx.ClaimMessage(ctx, &fhirstore.InboundMessage{Sender: "MON|ICU", ControlID: "C1", Raw: raw})
				if err != nil {
					return err
				}
				if prev == nil || prev.Status != fhirstore.MessageProcessed || string(prev.Ack) != "ACK1" {
					t.Errorf("resend claim = %+v, want the processed entry with its ACK", prev)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			got, err := st.Message(ctx, m.ID)
			if err != nil {
				t.Fatal(err)
			}
			want := &fhirstore.InboundMessage{ID: m.ID, Sender: "MON|ICU", ControlID: "C1", Type: "ORU^R01", Status: "processed",
				AckCode: "AA", Raw: raw, Ack: []byte("ACK1"), Resources: m.Resources, ReceivedAt: got.ReceivedAt}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("Message (-want +got):\n%s", diff)
			}

			// Failures: one without a key, one keyed; a processed key cannot be overwritten.
			for _, f := range []*fhirstore.InboundMessage{
				{Status: fhirstore.MessageError, Error: "does not parse", Raw: []byte("garbage")},
				{Status: fhirstore.MessageError, Error: "does not parse", Raw: []byte("garbage 2")},
				{Sender: "MON|ICU", ControlID: "C2", Type: "ZZZ^Z99", Status: fhirstore.MessageError, AckCode: "AR", Error: "unsupported", Raw: []byte("x")},
			} {
				if _, err := st.RecordMessage(ctx, f); err != nil {
					t.Fatalf("RecordMessage: %v", err)
				}
			}
			orig, err := st.RecordMessage(ctx, &fhirstore.InboundMessage{Sender: "MON|ICU", ControlID: "C1", Status: fhirstore.MessageError, Raw: raw})
			if !errors.Is(err, fhirstore.ErrConflict) || orig == nil || string(orig.Ack) != "ACK1" {
				t.Errorf("RecordMessage over a processed entry = %+v, %v; want the original and ErrConflict", orig, err)
			}
			errs, err := st.Messages(ctx, fhirstore.MessageQuery{Status: fhirstore.MessageError})
			if err != nil {
				t.Fatal(err)
			}
			var texts []string
			for _, e := range errs {
				texts = append(texts, string(e.Raw))
			}
			if diff := cmp.Diff([]string{"x", "garbage 2", "garbage"}, texts); diff != "" {
				t.Errorf("error entries, newest first (-want +got):\n%s", diff)
			}
			page, err := st.Messages(ctx, fhirstore.MessageQuery{Count: 2, Before: errs[0].ID})
			if err != nil || len(page) != 2 || page[0].ID != errs[1].ID {
				t.Errorf("second page = %d entries, %v", len(page), err)
			}
		})
	}
}

// TestMessageClaimConcurrent: the same key claimed by concurrent transactions is processed
// once; the others see the processed entry.
func TestMessageClaimConcurrent(t *testing.T) {
	for _, b := range storetest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			t.Parallel()
			st, _ := storetest.Open(t, b)
			ctx := context.Background()
			var wg sync.WaitGroup
			var mu sync.Mutex
			processed, dups := 0, 0
			for range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					err := st.InTx(ctx, func(tx *fhirstore.Tx) error {
						m := &fhirstore.InboundMessage{Sender: "S", ControlID: "K", Raw: []byte("m")}
						prev, err := tx.ClaimMessage(ctx, m)
						if err != nil {
							return err
						}
						if prev != nil && prev.Status == fhirstore.MessageProcessed {
							mu.Lock()
							dups++
							mu.Unlock()
							return nil
						}
						time.Sleep(5 * time.Millisecond)
						m.Status = fhirstore.MessageProcessed
						tx.AfterCommit(func() { mu.Lock(); processed++; mu.Unlock() })
						return tx.FinishMessage(ctx, m)
					})
					if err != nil {
						t.Error(err)
					}
				}()
			}
			wg.Wait()
			if processed != 1 || dups != 7 {
				t.Errorf("processed %d, duplicates %d; want 1 and 7", processed, dups)
			}
		})
	}
}

func TestSavepoint(t *testing.T) {
	for _, b := range storetest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			t.Parallel()
			st, _ := storetest.Open(t, b)
			ctx := context.Background()
			boom := errors.New("boom")
			var changes int
			err := st.InTx(ctx, func(tx *fhirstore.Tx) error {
				if err := tx.Savepoint(ctx, func() error {
					_, err := tx.CreateWithID(ctx, "Patient", "kept", map[string]any{"resourceType": "Patient"})
					return err
				}); err != nil {
					return err
				}
				err := tx.Savepoint(ctx, func() error {
					if _, err := tx.CreateWithID(ctx, "Patient", "dropped", map[string]any{"resourceType": "Patient"}); err != nil {
						return err
					}
					return boom
				})
				if !errors.Is(err, boom) {
					t.Errorf("failed savepoint = %v, want boom", err)
				}
				changes = len(tx.Changes())
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if changes != 1 {
				t.Errorf("changes after the rolled back unit = %d, want 1", changes)
			}
			if _, err := st.Read(ctx, "Patient", "kept"); err != nil {
				t.Errorf("kept: %v", err)
			}
			if _, err := st.Read(ctx, "Patient", "dropped"); !errors.Is(err, fhirstore.ErrNotFound) {
				t.Errorf("dropped: %v, want ErrNotFound", err)
			}
		})
	}
}

// TestRecordProcessed: the one-statement log entry written after a message's resources
// records a new message, replaces an earlier failed entry of the key, and refuses (writing
// nothing) when the key's entry is processed already.
func TestRecordProcessed(t *testing.T) {
	for _, b := range storetest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			t.Parallel()
			st, _ := storetest.Open(t, b)
			ctx := context.Background()
			record := func(m *fhirstore.InboundMessage) (bool, error) {
				var ok bool
				err := st.InTx(ctx, func(tx *fhirstore.Tx) error {
					var err error
					ok, err = tx.RecordProcessed(ctx, m)
					return err
				})
				return ok, err
			}
			// An earlier attempt failed and was logged as an error.
			if _, err := st.RecordMessage(ctx, &fhirstore.InboundMessage{Sender: "MON|ICU", ControlID: "R1", Status: fhirstore.MessageError,
				Error: "not stored", Raw: []byte("first")}); err != nil {
				t.Fatal(err)
			}
			m := &fhirstore.InboundMessage{Sender: "MON|ICU", ControlID: "R1", Type: "ORU^R01", AckCode: "AA", Ack: []byte("ACK1"),
				Raw: []byte("second"), Resources: []string{"Observation/o1"}}
			if ok, err := record(m); !ok || err != nil {
				t.Fatalf("record over a failed entry = %v, %v; want true", ok, err)
			}
			dup := &fhirstore.InboundMessage{Sender: "MON|ICU", ControlID: "R1", Type: "ORU^R01", AckCode: "AA", Ack: []byte("ACK2"), Raw: []byte("third")}
			if ok, err := record(dup); ok || err != nil {
				t.Fatalf("record over a processed entry = %v, %v; want false", ok, err)
			}
			got, err := st.Message(ctx, m.ID)
			if err != nil {
				t.Fatal(err)
			}
			want := []string{fhirstore.MessageProcessed, "", "ACK1", "second", "Observation/o1"}
			have := []string{got.Status, got.Error, string(got.Ack), string(got.Raw), strings.Join(got.Resources, " ")}
			if diff := cmp.Diff(want, have); diff != "" {
				t.Errorf("entry after the duplicate (-want +got):\n%s", diff)
			}
			if ok, err := record(&fhirstore.InboundMessage{Sender: "MON|ICU", ControlID: "R2", Raw: []byte("new"), Ack: []byte("ACK")}); !ok || err != nil {
				t.Fatalf("record of a new message = %v, %v; want true", ok, err)
			}

			// Copies of one message processed at once: one records, the others wait for
			// it, see the processed entry and roll back what they wrote.
			errDup := errors.New("duplicate")
			var wg sync.WaitGroup
			var mu sync.Mutex
			recorded, dups := 0, 0
			for range 6 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					err := st.InTx(ctx, func(tx *fhirstore.Tx) error {
						if _, err := tx.Create(ctx, "Patient", map[string]any{"resourceType": "Patient",
							"identifier": []any{map[string]any{"system": "urn:test", "value": "R3"}}}); err != nil {
							return err
						}
						ok, err := tx.RecordProcessed(ctx, &fhirstore.InboundMessage{Sender: "MON|ICU", ControlID: "R3", Raw: []byte("m")})
						if err != nil {
							return err
						}
						if !ok {
							return errDup
						}
						tx.AfterCommit(func() { mu.Lock(); recorded++; mu.Unlock() })
						return nil
					})
					switch {
					case errors.Is(err, errDup):
						mu.Lock()
						dups++
						mu.Unlock()
					case err != nil:
						t.Error(err)
					}
				}()
			}
			wg.Wait()
			if recorded != 1 || dups != 5 {
				t.Errorf("recorded %d, duplicates %d; want 1 and 5", recorded, dups)
			}
			res, err := st.Search(ctx, fhirstore.SearchRequest{Type: "Patient", Params: url.Values{"identifier": {"urn:test|R3"}}})
			if err != nil || len(res.Matches) != 1 {
				t.Errorf("Patients written by the copies = %d (%v), want 1", len(res.Matches), err)
			}
		})
	}
}
