package storage

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/serializer/protobuf"
	"k8s.io/client-go/kubernetes/scheme"
)

// TestUnitTimeShift: the times of a template's making move, in both of the
// encodings an apiserver stores, and a time outside that span does not.
func TestUnitTimeShift(t *testing.T) {
	made := time.Date(2026, 11, 27, 20, 25, 5, 0, time.UTC)
	long := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	ns := &corev1.Namespace{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Namespace"},
		ObjectMeta: metav1.ObjectMeta{
			Name:              "default",
			UID:               "5c05dc84-b5f0-432f-8c48-e5b142a2a616",
			CreationTimestamp: metav1.NewTime(made),
			ManagedFields:     []metav1.ManagedFieldsEntry{{Manager: "kube-apiserver", Operation: "Update", Time: &metav1.Time{Time: made.Add(time.Second)}}},
		},
		Status: corev1.NamespaceStatus{Conditions: []corev1.NamespaceCondition{{Type: "T", LastTransitionTime: metav1.NewTime(long)}}},
	}
	shift := timeShift{from: made.Unix() - 600, to: made.Unix() + 2, by: 3600}
	check := func(encoding string, got *corev1.Namespace) {
		t.Helper()
		if want := made.Add(time.Hour); !got.CreationTimestamp.Time.Equal(want) {
			t.Errorf("%s: created at %s, want %s", encoding, got.CreationTimestamp.UTC(), want)
		}
		if want := made.Add(time.Hour + time.Second); len(got.ManagedFields) != 1 || !got.ManagedFields[0].Time.Time.Equal(want) {
			t.Errorf("%s: managed fields %v, want the time %s", encoding, got.ManagedFields, want)
		}
		if len(got.Status.Conditions) != 1 || !got.Status.Conditions[0].LastTransitionTime.Time.Equal(long) {
			t.Errorf("%s: a time outside the span moved: %v", encoding, got.Status.Conditions)
		}
		if got.UID != ns.UID || got.Name != ns.Name {
			t.Errorf("%s: the rest changed: %s %s", encoding, got.Name, got.UID)
		}
	}

	// protobuf, as the apiserver stores it: "k8s\0" and a runtime.Unknown
	var stored bytes.Buffer
	codec := protobuf.NewSerializer(scheme.Scheme, scheme.Scheme)
	if err := codec.Encode(ns, &stored); err != nil {
		t.Fatal(err)
	}
	moved := shift.apply(stored.Bytes())
	if len(moved) != stored.Len() {
		t.Fatalf("protobuf: %d bytes became %d", stored.Len(), len(moved))
	}
	obj, _, err := codec.Decode(moved, nil, nil)
	if err != nil {
		t.Fatalf("protobuf: %v", err)
	}
	check("protobuf", obj.(*corev1.Namespace))
	if shifted := (timeShift{from: long.Unix() + 1, to: made.Unix() - 1, by: 3600}).apply(stored.Bytes()); !bytes.Equal(shifted, stored.Bytes()) {
		t.Error("protobuf: times outside the span moved")
	}

	// JSON, as the apiserver stores the API services
	js, err := json.Marshal(ns)
	if err != nil {
		t.Fatal(err)
	}
	var got corev1.Namespace
	if err := json.Unmarshal(shift.apply(js), &got); err != nil {
		t.Fatalf("JSON: %v", err)
	}
	check("JSON", &got)
}
