package syncer_test

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/vmatrix/vmatrix/internal/host"
)

// TestDefaultClassAtStart: a claim made the moment the syncer runs gets the
// host's default class, as in a real cluster. A server-side dry run goes
// through the admission that fills the class in, and leaves nothing behind.
func TestDefaultClassAtStart(t *testing.T) {
	needsHost(t)
	for _, version := range versions() {
		t.Run(version, func(t *testing.T) {
			name := "c" + strings.ReplaceAll(version, ".", "")
			cp := startControlPlane(t, name, version)
			s := startSyncer(t, name, cp.RESTConfig(), testHost.RESTConfig())
			t.Cleanup(func() { teardown(t, s) })
			claim := &corev1.PersistentVolumeClaim{
				ObjectMeta: metav1.ObjectMeta{Name: "early", Namespace: "default"},
				Spec: corev1.PersistentVolumeClaimSpec{
					AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
					Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
				},
			}
			got, err := clientFor(cp.RESTConfig()).CoreV1().PersistentVolumeClaims("default").Create(context.Background(), claim, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
			if err != nil {
				t.Fatal(err)
			}
			if c := got.Spec.StorageClassName; c == nil || *c != host.StorageClass {
				t.Errorf("a claim made the moment the syncer runs has class %v; want the host's default %q", c, host.StorageClass)
			}
		})
	}
}
