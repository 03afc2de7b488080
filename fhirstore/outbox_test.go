package fhirstore_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/vigil-health/vigil/fhirstore"
	"github.com/vigil-health/vigil/fhirstore/storetest"
)

func enqueue(t *testing.T, st *fhirstore.Store, dest string, payloads ...string) []int64 {
	t.Helper()
	var ids []int64
	err := st.InTx(context.Background(), func(tx *fhirstore.Tx) error {
		ids = ids[:0]
		for _, p := range payloads {
			id, err := tx.Enqueue(context.Background(), dest, "Observation/"+p, []byte(p))
			if err != nil {
				return err
			}
			ids = append(ids, id)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

func TestOutboxOrderAndStates(t *testing.T) {
	for _, b := range storetest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			t.Parallel()
			st, _ := storetest.Open(t, b)
			ctx := context.Background()
			ids := enqueue(t, st, "lab", "a", "b", "c")
			enqueue(t, st, "ehr", "x")

			// A rolled back transaction enqueues nothing.
			_ = st.InTx(ctx, func(tx *fhirstore.Tx) error {
				tx.Enqueue(ctx, "lab", "", []byte("never"))
				return errors.New("rollback")
			})

			m, _, err := st.ClaimOutbox(ctx, "lab", time.Minute)
			if err != nil || m == nil || string(m.Payload) != "a" || m.Attempts != 1 {
				t.Fatalf("first claim = %+v, %v; want a, attempt 1", m, err)
			}
			// The head is in flight: nothing else of lab may leave, ehr is independent.
			if m2, wait, err := st.ClaimOutbox(ctx, "lab", time.Minute); m2 != nil || err != nil || wait.IsZero() {
				t.Fatalf("claim while in flight = %+v, %v, %v; want nothing until the lease ends", m2, wait, err)
			}
			if e, _, _ := st.ClaimOutbox(ctx, "ehr", time.Minute); e == nil || string(e.Payload) != "x" {
				t.Fatalf("ehr claim = %+v, want x", e)
			}
			// A failure keeps the message at the head until its next attempt.
			if err := st.RetryOutbox(ctx, m.ID, time.Now().Add(-time.Millisecond), "timeout"); err != nil {
				t.Fatal(err)
			}
			if m, _, _ = st.ClaimOutbox(ctx, "lab", time.Minute); m == nil || string(m.Payload) != "a" || m.Attempts != 2 {
				t.Fatalf("claim after retry = %+v, want a, attempt 2", m)
			}
			if err := st.CompleteOutbox(ctx, m.ID); err != nil {
				t.Fatal(err)
			}
			bm, _, _ := st.ClaimOutbox(ctx, "lab", time.Minute)
			if bm == nil || string(bm.Payload) != "b" {
				t.Fatalf("claim after a sent = %+v, want b", bm)
			}
			// Parked: out of the queue, c goes next; requeued: it comes back.
			if err := st.ParkOutbox(ctx, bm.ID, "AE"); err != nil {
				t.Fatal(err)
			}
			cm, _, _ := st.ClaimOutbox(ctx, "lab", time.Minute)
			if cm == nil || string(cm.Payload) != "c" {
				t.Fatalf("claim after a park = %+v, want c", cm)
			}
			if err := st.RetryOutbox(ctx, cm.ID, time.Now().Add(time.Hour), "AR"); err != nil {
				t.Fatal(err)
			}
			if none, wait, _ := st.ClaimOutbox(ctx, "lab", time.Minute); none != nil || wait.Before(time.Now().Add(50*time.Minute)) {
				t.Fatalf("claim before the next attempt = %+v, wait %v", none, wait)
			}
			parked, err := st.OutboxMessages(ctx, fhirstore.OutboxQuery{Status: fhirstore.OutboxParked})
			if err != nil || len(parked) != 1 || parked[0].ID != ids[1] || parked[0].LastError != "AE" {
				t.Fatalf("parked = %+v, %v", parked, err)
			}
			failed, _ := st.OutboxMessages(ctx, fhirstore.OutboxQuery{Status: fhirstore.OutboxFailed})
			if len(failed) != 1 || failed[0].ID != ids[2] {
				t.Fatalf("failed = %+v, want c", failed)
			}
			if _, err := st.RequeueOutbox(ctx, ids[0]); !errors.Is(err, fhirstore.ErrConflict) {
				t.Errorf("requeue of a sent message = %v, want ErrConflict", err)
			}
			if _, err := st.RequeueOutbox(ctx, 999999); !errors.Is(err, fhirstore.ErrNotFound) {
				t.Errorf("requeue of a missing message = %v, want ErrNotFound", err)
			}
			if _, err := st.RequeueOutbox(ctx, bm.ID); err != nil {
				t.Fatal(err)
			}
			again, _, _ := st.ClaimOutbox(ctx, "lab", time.Minute)
			if again == nil || string(again.Payload) != "b" || again.Attempts != 2 {
				t.Fatalf("claim after requeue = %+v, want b, attempt 2", again)
			}
			all, _ := st.OutboxMessages(ctx, fhirstore.OutboxQuery{Destination: "lab"})
			var got []string
			for _, m := range all {
				got = append(got, string(m.Payload)+":"+m.Status)
			}
			if diff := cmp.Diff([]string{"c:pending", "b:pending", "a:sent"}, got); diff != "" {
				t.Errorf("lab rows (-want +got):\n%s", diff)
			}
		})
	}
}

// TestOutboxConcurrentClaims: many claimers (as several processes would be) deliver a
// destination's messages in order, one at a time.
func TestOutboxConcurrentClaims(t *testing.T) {
	for _, b := range storetest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			t.Parallel()
			st, _ := storetest.Open(t, b)
			ctx := context.Background()
			var want []string
			for i := range 30 {
				want = append(want, string(rune('A'+i)))
			}
			enqueue(t, st, "d", want...)
			var mu sync.Mutex
			var got []string
			inFlight := 0
			var wg sync.WaitGroup
			for range 4 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						m, wait, err := st.ClaimOutbox(ctx, "d", time.Minute)
						if err != nil {
							t.Error(err)
							return
						}
						if m == nil {
							if wait.IsZero() {
								return
							}
							time.Sleep(time.Millisecond)
							continue
						}
						mu.Lock()
						inFlight++
						if inFlight > 1 {
							t.Error("two messages of one destination in flight")
						}
						got = append(got, string(m.Payload))
						mu.Unlock()
						time.Sleep(time.Millisecond)
						mu.Lock()
						inFlight-- // before the completion: no other claim can succeed yet
						mu.Unlock()
						if err := st.CompleteOutbox(ctx, m.ID); err != nil {
							t.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("delivery order (-want +got):\n%s", diff)
			}
		})
	}
}
