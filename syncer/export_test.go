package syncer

import (
	"context"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// HostObjectNames lists "resource/name" of the objects of every kind the
// syncer writes that selector selects in a host namespace.
func HostObjectNames(ctx context.Context, host kubernetes.Interface, ns, selector string) ([]string, error) {
	var all []string
	for _, k := range hostKinds {
		names, err := k.names(ctx, host, ns, metav1.ListOptions{LabelSelector: selector})
		if err != nil {
			return nil, err
		}
		for _, n := range names {
			all = append(all, k.resource+"/"+n)
		}
	}
	return all, nil
}
