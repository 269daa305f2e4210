package syncer

import (
	"cmp"
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	utilnet "k8s.io/apimachinery/pkg/util/net"
	"k8s.io/apimachinery/pkg/util/proxy"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/rest"

	"github.com/vmatrix/vmatrix/internal/pki"
)

// KubeletOptions make the syncer serve the kubelet API of the virtual Nodes:
// the virtual apiserver sends `kubectl logs`, `exec`, `attach` and
// `port-forward` of a virtual pod there, and the syncer forwards each to the
// host pod it made, through the host apiserver.
type KubeletOptions struct {
	// CertFile and KeyFile are the listener's serving certificate.
	CertFile, KeyFile string
	// ClientCAFile is the CA that must have signed a caller's certificate, and
	// ClientName the only common name accepted: the virtual apiserver's
	// kubelet client certificate. Nothing else is answered.
	ClientCAFile, ClientName string
	// Address is the IP address to listen on and that the virtual Nodes
	// advertise; "" means 127.0.0.1 (the apiserver runs beside the syncer,
	// on this machine or in the same pod).
	Address string
}

// kubeletServer is the listener behind the virtual Nodes' kubelet endpoint.
type kubeletServer struct {
	s        *Syncer
	srv      *http.Server
	address  string
	port     int
	hostURL  *url.URL
	forward  http.RoundTripper                // to the host apiserver, with its credentials
	upgrades proxy.UpgradeRequestRoundTripper // the same for exec, attach and port-forward
}

// startKubelet listens and serves until Stop. The port is the kernel's choice
// at bind time, so no other process can take it in between.
func (s *Syncer) startKubelet() error {
	o := s.opts.Kubelet
	tlsConfig, err := pki.ServerTLS(o.CertFile, o.KeyFile, o.ClientCAFile, o.ClientName)
	if err != nil {
		return fmt.Errorf("syncer %s: kubelet API: %w", s.opts.Name, err)
	}
	k := &kubeletServer{s: s, address: cmp.Or(o.Address, "127.0.0.1")}
	if err := k.connectHost(s.opts.Host); err != nil {
		return fmt.Errorf("syncer %s: kubelet API: %w", s.opts.Name, err)
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(k.address, "0"))
	if err != nil {
		return fmt.Errorf("syncer %s: kubelet API listener: %w", s.opts.Name, err)
	}
	k.port = ln.Addr().(*net.TCPAddr).Port
	// A refused caller (no certificate, another cluster's) is worth a warning.
	k.srv = &http.Server{Handler: k, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)}
	go k.srv.Serve(tls.NewListener(ln, tlsConfig))
	s.kubelet = k
	return nil
}

// connectHost prepares the round trippers that carry a request to the host
// apiserver with the syncer's host credentials, as `kubectl proxy` does.
func (k *kubeletServer) connectHost(cfg *rest.Config) error {
	u, err := url.Parse(cfg.Host)
	if err != nil {
		return fmt.Errorf("host address %q: %w", cfg.Host, err)
	}
	if u.Scheme == "" {
		u.Scheme = "https"
	}
	k.hostURL = u
	tlsConfig, err := rest.TLSConfigFor(cfg)
	if err != nil {
		return err
	}
	base := utilnet.SetOldTransportDefaults(&http.Transport{
		TLSClientConfig: tlsConfig,
		DialContext:     (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
	})
	if k.forward, err = rest.HTTPWrappersForConfig(cfg, base); err != nil {
		return err
	}
	headers, err := rest.HTTPWrappersForConfig(cfg, proxy.MirrorRequest)
	if err != nil {
		return err
	}
	k.upgrades = proxy.NewUpgradeRequestRoundTripper(base, headers)
	return nil
}

func (k *kubeletServer) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	// Open streams (a followed log, an exec session) end with the syncer.
	if k.srv.Shutdown(ctx) != nil {
		k.srv.Close()
	}
}

// endpoint is what a virtual Node advertises: this listener.
func (k *kubeletServer) endpoint() (string, int32) { return k.address, int32(k.port) }

// kubeletRequest is a kubelet API request for one virtual pod.
type kubeletRequest struct {
	verb                      string // containerLogs, exec, attach or portForward
	namespace, pod, container string
}

// parseKubeletPath reads /VERB/NAMESPACE/POD[/CONTAINER] as the apiserver
// writes it. Every part must be a valid name, so a path with "..", an escaped
// slash or anything else crafted is no pod's and gets 404.
func parseKubeletPath(p string) (kubeletRequest, bool) {
	parts := strings.Split(strings.TrimPrefix(p, "/"), "/")
	var r kubeletRequest
	switch {
	case len(parts) == 4 && (parts[0] == "containerLogs" || parts[0] == "exec" || parts[0] == "attach"):
		r = kubeletRequest{parts[0], parts[1], parts[2], parts[3]}
		if len(validation.IsDNS1123Label(r.container)) > 0 {
			return r, false
		}
	case len(parts) == 3 && parts[0] == "portForward":
		r = kubeletRequest{parts[0], parts[1], parts[2], ""}
	default:
		return r, false
	}
	ok := len(validation.IsDNS1123Label(r.namespace)) == 0 && len(validation.IsDNS1123Subdomain(r.pod)) == 0
	return r, ok
}

// hostQuery turns the kubelet's query into the host apiserver's for the same
// request: the options of `kubectl logs` keep their names, exec and attach
// name their streams differently (input/output/error there, stdin/stdout/stderr here).
func (r kubeletRequest) hostQuery(in url.Values) (subresource string, out url.Values) {
	out = url.Values{}
	if r.container != "" {
		out.Set("container", r.container)
	}
	switch r.verb {
	case "containerLogs":
		for _, k := range []string{"follow", "previous", "timestamps", "sinceSeconds", "sinceTime", "tailLines", "limitBytes"} {
			if v, ok := in[k]; ok {
				out[k] = v
			}
		}
		return "log", out
	case "portForward":
		if ports, ok := in["port"]; ok {
			out["ports"] = ports
		}
		return "portforward", out
	}
	for kubelet, api := range map[string]string{"input": "stdin", "output": "stdout", "error": "stderr", "tty": "tty"} {
		if v := in.Get(kubelet); v != "" && v != "0" && !strings.EqualFold(v, "false") {
			out.Set(api, "true")
		}
	}
	if r.verb == "exec" {
		out["command"] = in["command"]
	}
	return r.verb, out
}

func (k *kubeletServer) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.URL.Path == "/healthz" {
		w.Write([]byte("ok"))
		return
	}
	r, ok := parseKubeletPath(req.URL.Path)
	if !ok {
		http.NotFound(w, req)
		return
	}
	hostPod, err := k.s.hostPodOf(r.namespace, r.pod)
	if err != nil {
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	}
	sub, query := r.hostQuery(req.URL.Query())
	loc := *k.hostURL
	loc.Path = path.Join(loc.Path, "api/v1/namespaces", hostPod.Namespace, "pods", hostPod.Name, sub)
	loc.RawQuery = query.Encode()
	// The reverse proxy takes the query from the request, the upgrade dialer
	// from the location: both get the translated one.
	req.URL.RawQuery = loc.RawQuery
	h := proxy.NewUpgradeAwareHandler(&loc, k.forward, false, false, k)
	h.UpgradeTransport = k.upgrades
	h.UseLocationHost = true
	h.FlushInterval = -1 // a followed log line goes out as soon as it comes in
	h.ServeHTTP(w, req)
}

// Error answers a request the host apiserver could not take.
func (k *kubeletServer) Error(w http.ResponseWriter, req *http.Request, err error) {
	http.Error(w, "forwarding to the host pod: "+err.Error(), http.StatusBadGateway)
}

// hostPodOf is the host copy of virtual pod namespace/name, if there is one
// and it is this syncer's copy of that very pod.
func (s *Syncer) hostPodOf(namespace, name string) (*corev1.Pod, error) {
	v, err := s.virtualPod(namespace, name)
	if err != nil {
		return nil, err
	}
	if v == nil {
		return nil, fmt.Errorf("pod %s/%s not found", namespace, name)
	}
	h, err := s.hostPod(s.hostName(namespace, name))
	if err != nil {
		return nil, err
	}
	if h == nil || !s.ownedKind(h, kindPod) || h.Annotations[AnnotationUID] != string(v.UID) {
		return nil, fmt.Errorf("pod %s/%s has no host pod (yet)", namespace, name)
	}
	return h, nil
}
