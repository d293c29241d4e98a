package k8s

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/api/resmap"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// Facts about the worker that the manifests must agree with.
const (
	workerName       = "secmail-worker"
	metricsPort      = 8080
	livenessPath     = "/healthz"
	readinessPath    = "/readyz"
	defaultGrace     = 25 * time.Second
	inputStream      = "SECMAIL_ARTICLES"
	monitoringNSName = "monitoring"
)

var consumers = []string{"secmail-inbound", "secmail-outbound"}

// knownEnv is every environment variable the worker reads, taken from the
// worker's source (calls like envOr("SECMAIL_X", ...) and os.Getenv), plus
// the Go runtime's. A variable in a manifest that the worker does not read is
// a typo or a leftover.
var knownEnv = sync.OnceValues(func() (map[string]bool, error) {
	env := map[string]bool{"GOMEMLIMIT": true, "GOMAXPROCS": true}
	re := regexp.MustCompile(`(?:\w+\(|Env\s*=\s*)"(SECMAIL_[A-Z0-9_]+)"`)
	for _, dir := range []string{"../../cmd/worker", "../../store"} {
		files, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil {
			return nil, err
		}
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			b, err := os.ReadFile(f)
			if err != nil {
				return nil, err
			}
			for _, m := range re.FindAllSubmatch(b, -1) {
				env[string(m[1])] = true
			}
		}
	}
	// The variables the issue defines must be found, or the scan is broken.
	for _, v := range []string{"SECMAIL_NATS_URL", "SECMAIL_NATS_CREDS", "SECMAIL_REDIS_URL", "SECMAIL_REDIS_PASSWORD",
		"SECMAIL_MASTER_KEY_FILE", "SECMAIL_MASTER_KEY", "SECMAIL_METRICS_ADDR", "SECMAIL_CONCURRENCY",
		"SECMAIL_LANG", "SECMAIL_LOG_FORMAT", "SECMAIL_SHUTDOWN_GRACE", "SECMAIL_KEY_BACKEND"} {
		if !env[v] {
			return nil, fmt.Errorf("%s not found in the worker's source: the scan for environment variables is out of date", v)
		}
	}
	return env, nil
})

func isKnownEnv(t *testing.T, name string) bool {
	t.Helper()
	env, err := knownEnv()
	if err != nil {
		t.Fatal(err)
	}
	return env[name]
}

// --- minimal strict types for the custom resources we ship ---------------

// ServiceMonitor (monitoring.coreos.com/v1), only the fields used here.
type serviceMonitor struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		JobLabel          string               `json:"jobLabel,omitempty"`
		Selector          metav1.LabelSelector `json:"selector"`
		NamespaceSelector *struct {
			MatchNames []string `json:"matchNames,omitempty"`
			Any        bool     `json:"any,omitempty"`
		} `json:"namespaceSelector,omitempty"`
		Endpoints []struct {
			Port          string `json:"port"`
			Path          string `json:"path,omitempty"`
			Interval      string `json:"interval,omitempty"`
			ScrapeTimeout string `json:"scrapeTimeout,omitempty"`
		} `json:"endpoints"`
	} `json:"spec"`
}

// ScaledObject (keda.sh/v1alpha1), only the fields used here.
type scaledObject struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		ScaleTargetRef struct {
			APIVersion string `json:"apiVersion,omitempty"`
			Kind       string `json:"kind,omitempty"`
			Name       string `json:"name"`
		} `json:"scaleTargetRef"`
		PollingInterval *int32 `json:"pollingInterval,omitempty"`
		CooldownPeriod  *int32 `json:"cooldownPeriod,omitempty"`
		MinReplicaCount *int32 `json:"minReplicaCount,omitempty"`
		MaxReplicaCount *int32 `json:"maxReplicaCount,omitempty"`
		Fallback        *struct {
			FailureThreshold int32 `json:"failureThreshold"`
			Replicas         int32 `json:"replicas"`
		} `json:"fallback,omitempty"`
		Advanced *struct {
			HorizontalPodAutoscalerConfig *struct {
				Behavior *autoscalingv2.HorizontalPodAutoscalerBehavior `json:"behavior,omitempty"`
			} `json:"horizontalPodAutoscalerConfig,omitempty"`
		} `json:"advanced,omitempty"`
		Triggers []struct {
			Type     string            `json:"type"`
			Name     string            `json:"name,omitempty"`
			Metadata map[string]string `json:"metadata"`
		} `json:"triggers"`
	} `json:"spec"`
}

// PrometheusRule (monitoring.coreos.com/v1); spec is a Prometheus rules file.
type prometheusRule struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              ruleFile `json:"spec"`
}

type ruleFile struct {
	Groups []struct {
		Name     string `json:"name"`
		Interval string `json:"interval,omitempty"`
		Rules    []rule `json:"rules"`
	} `json:"groups"`
}

type rule struct {
	Alert         string            `json:"alert,omitempty"`
	Record        string            `json:"record,omitempty"`
	Expr          string            `json:"expr"`
	For           string            `json:"for,omitempty"`
	KeepFiringFor string            `json:"keep_firing_for,omitempty"`
	Labels        map[string]string `json:"labels,omitempty"`
	Annotations   map[string]string `json:"annotations,omitempty"`
}

// --- rendering and strict decoding -----------------------------------------

// rendered is one overlay, every object decoded into its typed form.
type rendered struct {
	deployments     []*appsv1.Deployment
	configMaps      []*corev1.ConfigMap
	secrets         []*corev1.Secret
	serviceAccounts []*corev1.ServiceAccount
	services        []*corev1.Service
	pdbs            []*policyv1.PodDisruptionBudget
	hpas            []*autoscalingv2.HorizontalPodAutoscaler
	netpols         []*networkingv1.NetworkPolicy
	serviceMonitors []*serviceMonitor
	scaledObjects   []*scaledObject
	rules           []*prometheusRule
}

// decoders maps apiVersion/kind to a strict decoder that appends the object
// to r. An unknown kind or apiVersion is an error, so a typo there fails too.
var decoders = map[string]func(r *rendered, y []byte) error{
	"apps/v1/Deployment": func(r *rendered, y []byte) error {
		return strictAppend(y, &r.deployments)
	},
	"v1/ConfigMap":      func(r *rendered, y []byte) error { return strictAppend(y, &r.configMaps) },
	"v1/Secret":         func(r *rendered, y []byte) error { return strictAppend(y, &r.secrets) },
	"v1/ServiceAccount": func(r *rendered, y []byte) error { return strictAppend(y, &r.serviceAccounts) },
	"v1/Service":        func(r *rendered, y []byte) error { return strictAppend(y, &r.services) },
	"policy/v1/PodDisruptionBudget": func(r *rendered, y []byte) error {
		return strictAppend(y, &r.pdbs)
	},
	"autoscaling/v2/HorizontalPodAutoscaler": func(r *rendered, y []byte) error {
		return strictAppend(y, &r.hpas)
	},
	"networking.k8s.io/v1/NetworkPolicy": func(r *rendered, y []byte) error {
		return strictAppend(y, &r.netpols)
	},
	"monitoring.coreos.com/v1/ServiceMonitor": func(r *rendered, y []byte) error {
		return strictAppend(y, &r.serviceMonitors)
	},
	"monitoring.coreos.com/v1/PrometheusRule": func(r *rendered, y []byte) error {
		return strictAppend(y, &r.rules)
	},
	"keda.sh/v1alpha1/ScaledObject": func(r *rendered, y []byte) error {
		return strictAppend(y, &r.scaledObjects)
	},
}

func strictAppend[T any](y []byte, list *[]*T) error {
	v := new(T)
	// UnmarshalStrict converts to JSON and decodes with DisallowUnknownFields
	// (and rejects duplicate keys), so a misspelt field is an error.
	if err := yaml.UnmarshalStrict(y, v); err != nil {
		return err
	}
	*list = append(*list, v)
	return nil
}

// render runs kustomize in-process on dir of fsys.
func render(fsys filesys.FileSystem, dir string) (resmap.ResMap, error) {
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	return k.Run(fsys, dir)
}

// decodeAll decodes every rendered object strictly.
func decodeAll(m resmap.ResMap) (*rendered, error) {
	r := &rendered{}
	for _, res := range m.Resources() {
		y, err := res.AsYAML()
		if err != nil {
			return nil, err
		}
		key := res.GetApiVersion() + "/" + res.GetKind()
		dec, ok := decoders[key]
		if !ok {
			return nil, fmt.Errorf("%s %q: no strict decoder for %s", res.GetKind(), res.GetName(), key)
		}
		if err := dec(r, y); err != nil {
			return nil, fmt.Errorf("%s %q: %w", res.GetKind(), res.GetName(), err)
		}
	}
	return r, nil
}

// overlays lists every directory under overlays/, so a new overlay is tested
// without anyone remembering to add it here.
func overlays(t *testing.T) []string {
	t.Helper()
	entries, err := os.ReadDir("overlays")
	if err != nil {
		t.Fatal(err)
	}
	var dirs []string
	for _, e := range entries {
		if e.IsDir() {
			dirs = append(dirs, e.Name())
		}
	}
	for _, want := range []string{"development", "production", "production-openssl", "production-pkcs11"} {
		if !slices.Contains(dirs, want) {
			t.Fatalf("overlay %s missing (have %v)", want, dirs)
		}
	}
	return dirs
}

func renderOverlay(t *testing.T, name string) *rendered {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("overlays", name))
	if err != nil {
		t.Fatal(err)
	}
	m, err := render(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", name, err)
	}
	r, err := decodeAll(m)
	if err != nil {
		t.Fatalf("overlay %s: %v", name, err)
	}
	return r
}

// --- the overlay checks -----------------------------------------------------

func TestOverlays(t *testing.T) {
	for _, name := range overlays(t) {
		t.Run(name, func(t *testing.T) {
			r := renderOverlay(t, name)
			checkCommon(t, r)
			switch name {
			case "development":
				checkAutoscaler(t, r, "hpa")
				checkSecretsGenerated(t, r)
				checkBackend(t, r, "go", "ghcr.io/secmail/worker:")
			case "production":
				checkAutoscaler(t, r, "keda")
				checkNoSecretValues(t, r)
				checkBackend(t, r, "go", "ghcr.io/secmail/worker:")
				checkProductionExtras(t, r)
			case "production-openssl":
				checkAutoscaler(t, r, "keda")
				checkNoSecretValues(t, r)
				checkBackend(t, r, "openssl", "ghcr.io/secmail/worker-openssl:")
				checkProductionExtras(t, r)
			case "production-pkcs11":
				checkAutoscaler(t, r, "keda")
				checkNoSecretValues(t, r)
				checkBackend(t, r, "pkcs11", "ghcr.io/secmail/worker-pkcs11:")
				checkProductionExtras(t, r)
				checkPKCS11(t, r)
			}
		})
	}
}

func one[T any](t *testing.T, what string, list []*T) *T {
	t.Helper()
	if len(list) != 1 {
		t.Fatalf("want exactly one %s, have %d", what, len(list))
	}
	return list[0]
}

func configData(t *testing.T, r *rendered, d *appsv1.Deployment) map[string]string {
	t.Helper()
	c := d.Spec.Template.Spec.Containers[0]
	data := map[string]string{}
	for _, ef := range c.EnvFrom {
		if ef.ConfigMapRef == nil {
			t.Fatalf("envFrom without configMapRef: %+v", ef)
		}
		cm := findByName(r.configMaps, ef.ConfigMapRef.Name)
		if cm == nil {
			t.Fatalf("envFrom references ConfigMap %q, not rendered", ef.ConfigMapRef.Name)
		}
		for k, v := range cm.Data {
			data[k] = v
		}
	}
	for _, e := range c.Env {
		if e.ValueFrom == nil {
			data[e.Name] = e.Value
		}
	}
	return data
}

func findByName[T any, PT interface {
	*T
	GetName() string
}](list []PT, name string) PT {
	for _, o := range list {
		if o.GetName() == name {
			return o
		}
	}
	return nil
}

func checkCommon(t *testing.T, r *rendered) {
	t.Helper()
	d := one(t, "Deployment", r.deployments)
	if d.Name != workerName {
		t.Errorf("Deployment name %q, want %q", d.Name, workerName)
	}
	if d.Spec.Replicas != nil {
		t.Errorf("Deployment sets replicas=%d; the autoscaler owns that field", *d.Spec.Replicas)
	}
	ps := d.Spec.Template.Spec
	podLabels := labels.Set(d.Spec.Template.Labels)

	// Selector must select the pod template, or the API server rejects it.
	sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil || !sel.Matches(podLabels) {
		t.Errorf("Deployment selector %v does not match template labels %v (%v)", d.Spec.Selector, podLabels, err)
	}

	// Pod security.
	psc := ps.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot {
		t.Error("pod securityContext.runAsNonRoot must be true")
	}
	if psc == nil || psc.RunAsUser == nil || *psc.RunAsUser == 0 {
		t.Error("pod securityContext.runAsUser must be a non-zero uid")
	}
	if psc == nil || psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Error("pod seccompProfile must be RuntimeDefault")
	}
	if ps.AutomountServiceAccountToken == nil || *ps.AutomountServiceAccountToken {
		t.Error("automountServiceAccountToken must be false: the worker never calls the API server")
	}
	if findByName(r.serviceAccounts, ps.ServiceAccountName) == nil {
		t.Errorf("ServiceAccount %q not rendered", ps.ServiceAccountName)
	}
	if len(ps.TopologySpreadConstraints) == 0 {
		t.Error("no topologySpreadConstraints")
	}
	for _, tsc := range ps.TopologySpreadConstraints {
		s, err := metav1.LabelSelectorAsSelector(tsc.LabelSelector)
		if err != nil || !s.Matches(podLabels) {
			t.Errorf("topology spread on %s does not select the worker pods", tsc.TopologyKey)
		}
	}

	if len(ps.Containers) != 1 {
		t.Fatalf("want one container, have %d", len(ps.Containers))
	}
	c := ps.Containers[0]
	if !slices.Equal(c.Args, []string{"run"}) || len(c.Command) != 0 {
		t.Errorf("container must run the image entrypoint /worker with args [run], has command %v args %v", c.Command, c.Args)
	}
	sc := c.SecurityContext
	switch {
	case sc == nil:
		t.Fatal("container securityContext missing")
	case sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation:
		t.Error("allowPrivilegeEscalation must be false")
	case sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem:
		t.Error("readOnlyRootFilesystem must be true")
	case sc.Privileged != nil && *sc.Privileged:
		t.Error("privileged must not be true")
	case sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) != 0:
		t.Error("capabilities must drop ALL and add none")
	case sc.RunAsUser != nil && *sc.RunAsUser == 0:
		t.Error("container runs as root")
	}

	// Resources.
	for _, res := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		req, okReq := c.Resources.Requests[res]
		lim, okLim := c.Resources.Limits[res]
		if !okReq || !okLim {
			t.Errorf("%s request and limit must both be set", res)
			continue
		}
		if req.Cmp(lim) > 0 {
			t.Errorf("%s request %s above limit %s", res, req.String(), lim.String())
		}
	}

	// Ports and probes.
	var port *corev1.ContainerPort
	for i := range c.Ports {
		if c.Ports[i].Name == "metrics" {
			port = &c.Ports[i]
		}
	}
	if port == nil || port.ContainerPort != metricsPort {
		t.Fatalf("container port \"metrics\" must be %d, have %+v", metricsPort, c.Ports)
	}
	probe := func(what string, p *corev1.Probe, path string) {
		t.Helper()
		if p == nil || p.HTTPGet == nil {
			t.Errorf("%s probe must be an HTTP GET", what)
			return
		}
		if p.HTTPGet.Path != path {
			t.Errorf("%s probe path %q, want %q", what, p.HTTPGet.Path, path)
		}
		if !portIs(p.HTTPGet.Port, "metrics", metricsPort) {
			t.Errorf("%s probe port %s, want metrics/%d", what, p.HTTPGet.Port.String(), metricsPort)
		}
	}
	probe("liveness", c.LivenessProbe, livenessPath)
	probe("readiness", c.ReadinessProbe, readinessPath)
	if c.StartupProbe != nil {
		probe("startup", c.StartupProbe, livenessPath)
	}

	// Configuration and the shutdown budget.
	cfg := configData(t, r, d)
	for _, cm := range r.configMaps {
		if cm.Labels["grafana_dashboard"] != "" {
			continue
		}
		for k := range cm.Data {
			if !isKnownEnv(t, k) {
				t.Errorf("ConfigMap %s: unknown variable %s", cm.Name, k)
			}
		}
	}
	for _, e := range c.Env {
		if !isKnownEnv(t, e.Name) {
			t.Errorf("container env: unknown variable %s", e.Name)
		}
	}
	if addr := cfg["SECMAIL_METRICS_ADDR"]; addr != "" && addr != fmt.Sprintf(":%d", metricsPort) {
		t.Errorf("SECMAIL_METRICS_ADDR %q does not match container port %d", addr, metricsPort)
	}
	grace := defaultGrace
	if s, ok := cfg["SECMAIL_SHUTDOWN_GRACE"]; ok {
		if grace, err = time.ParseDuration(s); err != nil {
			t.Fatalf("SECMAIL_SHUTDOWN_GRACE: %v", err)
		}
	}
	if ps.TerminationGracePeriodSeconds == nil {
		t.Fatal("terminationGracePeriodSeconds not set")
	}
	if tg := time.Duration(*ps.TerminationGracePeriodSeconds) * time.Second; tg <= grace {
		t.Errorf("terminationGracePeriodSeconds %v must exceed the worker's shutdown grace %v", tg, grace)
	}
	if cfg["SECMAIL_MASTER_KEY"] != "" {
		t.Error("SECMAIL_MASTER_KEY set as a plain value; use the mounted key file")
	}
	if _, ok := cfg["SECMAIL_PKCS11_PIN"]; ok {
		t.Error("SECMAIL_PKCS11_PIN set as a plain value; it must come from a secretKeyRef")
	}
	if cfg["SECMAIL_NATS_URL"] == "" {
		t.Error("SECMAIL_NATS_URL not set: the worker would start its embedded server")
	}

	checkSecretRefs(t, d, cfg)
	checkMetricsPath(t, r, podLabels)

	pdb := one(t, "PodDisruptionBudget", r.pdbs)
	if s, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector); err != nil || !s.Matches(podLabels) {
		t.Error("PodDisruptionBudget does not select the worker pods")
	}
	if pdb.Spec.MinAvailable == nil && pdb.Spec.MaxUnavailable == nil {
		t.Error("PodDisruptionBudget without minAvailable or maxUnavailable")
	}

	checkNetworkPolicy(t, one(t, "NetworkPolicy", r.netpols), podLabels)
}

func portIs(p intstr.IntOrString, name string, number int32) bool {
	if p.Type == intstr.String {
		return p.StrVal == name
	}
	return p.IntVal == number
}

// checkSecretRefs: the master key, the Redis password and (when used) the
// NATS credentials come from Secrets, mounted where the config points.
func checkSecretRefs(t *testing.T, d *appsv1.Deployment, cfg map[string]string) {
	t.Helper()
	ps := d.Spec.Template.Spec
	c := ps.Containers[0]
	mountedFile := func(path string) (secret string) {
		for _, m := range c.VolumeMounts {
			if !strings.HasPrefix(path, m.MountPath+"/") {
				continue
			}
			if !m.ReadOnly {
				t.Errorf("secret mount %s must be readOnly", m.MountPath)
			}
			for _, v := range ps.Volumes {
				if v.Name == m.Name && v.Secret != nil {
					rel := strings.TrimPrefix(path, m.MountPath+"/")
					for _, it := range v.Secret.Items {
						if it.Path == rel {
							return v.Secret.SecretName
						}
					}
					if len(v.Secret.Items) == 0 {
						return v.Secret.SecretName
					}
				}
			}
		}
		return ""
	}
	for _, v := range ps.Volumes {
		if v.Secret == nil {
			continue
		}
		// The pod runs as a non-root uid and the files belong to root with
		// group fsGroup: the group must read them, nobody else may.
		mode := int32(0o644)
		if v.Secret.DefaultMode != nil {
			mode = *v.Secret.DefaultMode
		}
		if mode&0o040 == 0 || mode&0o027 != 0 || ps.SecurityContext.FSGroup == nil {
			t.Errorf("secret volume %s: mode %#o with fsGroup %v; want group-readable, no other access", v.Name, mode, ps.SecurityContext.FSGroup)
		}
	}
	if f := cfg["SECMAIL_MASTER_KEY_FILE"]; f == "" || mountedFile(f) == "" {
		t.Errorf("SECMAIL_MASTER_KEY_FILE %q is not a file of a mounted Secret", f)
	}
	if f, ok := cfg["SECMAIL_NATS_CREDS"]; ok && mountedFile(f) == "" {
		t.Errorf("SECMAIL_NATS_CREDS %q is not a file of a mounted Secret", f)
	}
	var redis bool
	for _, e := range c.Env {
		if e.Name == "SECMAIL_REDIS_PASSWORD" {
			redis = e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil
		}
	}
	if !redis {
		t.Error("SECMAIL_REDIS_PASSWORD must come from a secretKeyRef")
	}
	if strings.Contains(cfg["SECMAIL_REDIS_URL"], "@") {
		t.Error("SECMAIL_REDIS_URL carries credentials; use SECMAIL_REDIS_PASSWORD")
	}
}

// secretNames lists the Secrets the Deployment references.
func secretNames(d *appsv1.Deployment) []string {
	var names []string
	for _, v := range d.Spec.Template.Spec.Volumes {
		if v.Secret != nil {
			names = append(names, v.Secret.SecretName)
		}
	}
	for _, e := range d.Spec.Template.Spec.Containers[0].Env {
		if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
			names = append(names, e.ValueFrom.SecretKeyRef.Name)
		}
	}
	return names
}

// checkMetricsPath: Service → pods, ServiceMonitor → Service port.
func checkMetricsPath(t *testing.T, r *rendered, podLabels labels.Set) {
	t.Helper()
	svc := one(t, "Service", r.services)
	if !labels.SelectorFromSet(svc.Spec.Selector).Matches(podLabels) || len(svc.Spec.Selector) == 0 {
		t.Errorf("Service %s does not select the worker pods", svc.Name)
	}
	var svcPort *corev1.ServicePort
	for i := range svc.Spec.Ports {
		if svc.Spec.Ports[i].Name == "metrics" {
			svcPort = &svc.Spec.Ports[i]
		}
	}
	if svcPort == nil || !portIs(svcPort.TargetPort, "metrics", metricsPort) {
		t.Fatalf("Service needs a port \"metrics\" targeting the container's metrics port, has %+v", svc.Spec.Ports)
	}
	sm := one(t, "ServiceMonitor", r.serviceMonitors)
	if s, err := metav1.LabelSelectorAsSelector(&sm.Spec.Selector); err != nil || !s.Matches(labels.Set(svc.Labels)) {
		t.Errorf("ServiceMonitor selector %v does not match Service labels %v", sm.Spec.Selector, svc.Labels)
	}
	if len(sm.Spec.Endpoints) != 1 || sm.Spec.Endpoints[0].Port != "metrics" || sm.Spec.Endpoints[0].Path != "/metrics" {
		t.Errorf("ServiceMonitor must scrape port metrics at /metrics, has %+v", sm.Spec.Endpoints)
	}
	// The alert rules select job="secmail-worker": the job label comes from
	// the Service label named by jobLabel.
	if svc.Labels[sm.Spec.JobLabel] != workerName {
		t.Errorf("ServiceMonitor jobLabel %q gives job %q, alerts expect %q", sm.Spec.JobLabel, svc.Labels[sm.Spec.JobLabel], workerName)
	}
}

func checkNetworkPolicy(t *testing.T, np *networkingv1.NetworkPolicy, podLabels labels.Set) {
	t.Helper()
	if s, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector); err != nil || !s.Matches(podLabels) {
		t.Error("NetworkPolicy does not select the worker pods")
	}
	if !slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeIngress) || !slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeEgress) {
		t.Errorf("NetworkPolicy must restrict both directions, has %v", np.Spec.PolicyTypes)
	}
	// Ingress: the metrics port, from the monitoring namespace only.
	if len(np.Spec.Ingress) != 1 {
		t.Fatalf("want one ingress rule, have %d", len(np.Spec.Ingress))
	}
	in := np.Spec.Ingress[0]
	if len(in.Ports) != 1 || in.Ports[0].Port == nil || in.Ports[0].Port.IntVal != metricsPort {
		t.Errorf("ingress must allow only port %d, has %+v", metricsPort, in.Ports)
	}
	if len(in.From) != 1 || in.From[0].NamespaceSelector == nil ||
		in.From[0].NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"] != monitoringNSName || in.From[0].IPBlock != nil {
		t.Errorf("ingress must come only from namespace %s, has %+v", monitoringNSName, in.From)
	}
	// Egress: exactly NATS, Redis and DNS.
	got := map[string]bool{}
	for _, e := range np.Spec.Egress {
		if len(e.To) == 0 {
			t.Errorf("egress rule %+v allows every destination", e)
		}
		for _, p := range e.Ports {
			proto := corev1.ProtocolTCP
			if p.Protocol != nil {
				proto = *p.Protocol
			}
			got[fmt.Sprintf("%d/%s", p.Port.IntVal, proto)] = true
		}
		if len(e.Ports) == 0 {
			t.Errorf("egress rule %+v allows every port", e)
		}
	}
	want := map[string]bool{"4222/TCP": true, "6379/TCP": true, "53/UDP": true, "53/TCP": true}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("egress ports %v, want %v", got, want)
	}
}

func checkAutoscaler(t *testing.T, r *rendered, kind string) {
	t.Helper()
	switch kind {
	case "hpa":
		if len(r.scaledObjects) != 0 {
			t.Error("HPA and KEDA ScaledObject together: two autoscalers fight over one Deployment")
		}
		h := one(t, "HorizontalPodAutoscaler", r.hpas)
		if h.Spec.ScaleTargetRef.Kind != "Deployment" || h.Spec.ScaleTargetRef.Name != workerName {
			t.Errorf("HPA targets %+v", h.Spec.ScaleTargetRef)
		}
		if h.Spec.MinReplicas == nil || *h.Spec.MinReplicas < 1 || h.Spec.MaxReplicas < *h.Spec.MinReplicas {
			t.Errorf("HPA replica bounds %v..%d", h.Spec.MinReplicas, h.Spec.MaxReplicas)
		}
		if len(h.Spec.Metrics) != 1 || h.Spec.Metrics[0].Resource == nil || h.Spec.Metrics[0].Resource.Name != corev1.ResourceCPU {
			t.Errorf("HPA must scale on CPU, has %+v", h.Spec.Metrics)
		}
	case "keda":
		if len(r.hpas) != 0 {
			t.Error("HPA and KEDA ScaledObject together: two autoscalers fight over one Deployment")
		}
		so := one(t, "ScaledObject", r.scaledObjects)
		ref := so.Spec.ScaleTargetRef
		if ref.Name != workerName || (ref.Kind != "" && ref.Kind != "Deployment") {
			t.Errorf("ScaledObject targets %+v", ref)
		}
		// Scaling to zero would take the preflight request-reply service down.
		if so.Spec.MinReplicaCount == nil || *so.Spec.MinReplicaCount < 1 {
			t.Error("ScaledObject minReplicaCount must be at least 1")
		}
		if so.Spec.MaxReplicaCount == nil || *so.Spec.MaxReplicaCount < *so.Spec.MinReplicaCount {
			t.Error("ScaledObject maxReplicaCount missing or below min")
		}
		var seen []string
		for _, tr := range so.Spec.Triggers {
			if tr.Type != "nats-jetstream" {
				t.Errorf("trigger type %q, want nats-jetstream", tr.Type)
				continue
			}
			md := tr.Metadata
			for _, k := range []string{"natsServerMonitoringEndpoint", "account", "stream", "consumer", "lagThreshold"} {
				if md[k] == "" {
					t.Errorf("trigger %s: metadata %s missing", tr.Name, k)
				}
			}
			for k := range md {
				if !slices.Contains([]string{"natsServerMonitoringEndpoint", "account", "stream", "consumer", "lagThreshold", "activationLagThreshold", "useHttps"}, k) {
					t.Errorf("trigger %s: unknown nats-jetstream metadata %q", tr.Name, k)
				}
			}
			if md["stream"] != inputStream {
				t.Errorf("trigger %s: stream %q, want %s", tr.Name, md["stream"], inputStream)
			}
			if !strings.HasSuffix(md["natsServerMonitoringEndpoint"], ":8222") {
				t.Errorf("trigger %s: endpoint %q is not a NATS monitoring port", tr.Name, md["natsServerMonitoringEndpoint"])
			}
			seen = append(seen, md["consumer"])
		}
		slices.Sort(seen)
		if !slices.Equal(seen, consumers) {
			t.Errorf("ScaledObject scales on consumers %v, want %v", seen, consumers)
		}
	}
}

func checkSecretsGenerated(t *testing.T, r *rendered) {
	t.Helper()
	d := r.deployments[0]
	for _, name := range secretNames(d) {
		s := findByName(r.secrets, name)
		if s == nil {
			t.Errorf("development: Secret %q referenced but not generated", name)
			continue
		}
		for k, v := range s.Data {
			// Generated dev values must look fake to anyone reading them.
			if !strings.Contains(string(v), "dev") && !strings.Contains(string(v), "ZGV2") {
				t.Errorf("development Secret %s/%s does not look like an obviously fake value", name, k)
			}
		}
	}
}

func checkNoSecretValues(t *testing.T, r *rendered) {
	t.Helper()
	if len(r.secrets) != 0 {
		t.Errorf("production renders %d Secret(s); production Secrets are created out of band", len(r.secrets))
	}
	names := secretNames(r.deployments[0])
	for _, want := range []string{"secmail-master-key", "secmail-redis", "secmail-nats-creds"} {
		if !slices.Contains(names, want) {
			t.Errorf("production Deployment does not reference Secret %s (has %v)", want, names)
		}
	}
}

func checkBackend(t *testing.T, r *rendered, backend, imagePrefix string) {
	t.Helper()
	d := r.deployments[0]
	cfg := configData(t, r, d)
	if cfg["SECMAIL_KEY_BACKEND"] != backend {
		t.Errorf("SECMAIL_KEY_BACKEND %q, want %q", cfg["SECMAIL_KEY_BACKEND"], backend)
	}
	img := d.Spec.Template.Spec.Containers[0].Image
	if !strings.HasPrefix(img, imagePrefix) {
		t.Errorf("image %q, want prefix %q", img, imagePrefix)
	}
	if backend != "pkcs11" {
		for k := range cfg {
			if strings.HasPrefix(k, "SECMAIL_PKCS11_") {
				t.Errorf("%s set with key backend %s", k, backend)
			}
		}
	}
}

// checkPKCS11: module and token configured, the module where the
// Dockerfile.pkcs11 image says it is, and the PIN only from a Secret.
func checkPKCS11(t *testing.T, r *rendered) {
	t.Helper()
	d := r.deployments[0]
	cfg := configData(t, r, d)
	mod := cfg["SECMAIL_PKCS11_MODULE"]
	if !strings.HasPrefix(mod, "/") || !strings.HasSuffix(mod, ".so") {
		t.Errorf("SECMAIL_PKCS11_MODULE %q is not an absolute path of a shared object", mod)
	}
	b, err := os.ReadFile("../../Dockerfile.pkcs11")
	if err != nil {
		t.Fatal(err)
	}
	ins, err := parseDockerfile(string(b))
	if err != nil {
		t.Fatal(err)
	}
	st := stages(ins)
	if env := strings.Fields(strings.Join(find(st[len(st)-1].ins, "ENV"), " ")); !slices.Contains(env, "SECMAIL_PKCS11_MODULE="+mod) {
		t.Errorf("Dockerfile.pkcs11 ENV %v does not put the module at %s, where the manifests expect it", env, mod)
	}
	if cfg["SECMAIL_PKCS11_TOKEN"] == "" {
		t.Error("SECMAIL_PKCS11_TOKEN (the token label) not set")
	}
	var pin *corev1.SecretKeySelector
	for _, e := range d.Spec.Template.Spec.Containers[0].Env {
		if e.Name == "SECMAIL_PKCS11_PIN" && e.ValueFrom != nil {
			pin = e.ValueFrom.SecretKeyRef
		}
	}
	if pin == nil || pin.Name != "secmail-pkcs11" || pin.Key != "pin" || (pin.Optional != nil && *pin.Optional) {
		t.Errorf("SECMAIL_PKCS11_PIN must come from the Secret secmail-pkcs11, key pin, not optional; has %+v", pin)
	}
}

func checkProductionExtras(t *testing.T, r *rendered) {
	t.Helper()
	img := r.deployments[0].Spec.Template.Spec.Containers[0].Image
	if strings.HasSuffix(img, ":latest") || !strings.Contains(img, ":") {
		t.Errorf("production image %q must be pinned to a release", img)
	}
	// The README's NATS release is a 3-node cluster; R1 streams there would
	// lose articles with one node.
	if got := configData(t, r, r.deployments[0])["SECMAIL_REPLICAS"]; got != "3" {
		t.Errorf("production SECMAIL_REPLICAS %q, want 3", got)
	}
	pr := one(t, "PrometheusRule", r.rules)
	if len(pr.Spec.Groups) == 0 {
		t.Error("PrometheusRule without groups")
	}
	var dash bool
	for _, cm := range r.configMaps {
		if cm.Labels["grafana_dashboard"] == "1" && cm.Data["secmail-dashboard.json"] != "" {
			dash = true
		}
	}
	if !dash {
		t.Error("Grafana dashboard ConfigMap missing from production")
	}
	for _, o := range []metav1.Object{r.deployments[0], pr, r.netpols[0], r.scaledObjects[0]} {
		if o.GetNamespace() != "secmail" {
			t.Errorf("%s in namespace %q, want secmail", o.GetName(), o.GetNamespace())
		}
	}
}

// TestStrictDecodeRejectsTypos proves the strict decoding above can fail: a
// misspelt field, a field at the wrong level, an unknown apiVersion and a
// misspelt field in a custom resource each break the render check.
func TestStrictDecodeRejectsTypos(t *testing.T) {
	base, err := os.ReadFile("base/deployment.yaml")
	if err != nil {
		t.Fatal(err)
	}
	sm, err := os.ReadFile("base/servicemonitor.yaml")
	if err != nil {
		t.Fatal(err)
	}
	so, err := os.ReadFile("components/keda/scaledobject.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, file, old, new string
		src                  []byte
	}{
		{"misspelt probe", "deployment.yaml", "readinessProbe:", "readinesProbe:", base},
		{"field at wrong level", "deployment.yaml", "      terminationGracePeriodSeconds: 30", "      terminationGracePeriodSeconds: 30\n      readOnlyRootFilesystem: true", base},
		{"unknown apiVersion", "deployment.yaml", "apiVersion: apps/v1", "apiVersion: apps/v1beta3", base},
		{"wrong type", "deployment.yaml", "terminationGracePeriodSeconds: 30", "terminationGracePeriodSeconds: thirty", base},
		{"ServiceMonitor typo", "servicemonitor.yaml", "scrapeTimeout:", "scrapeTimout:", sm},
		{"ScaledObject typo", "scaledobject.yaml", "minReplicaCount:", "minReplicas:", so},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// The unmodified document must decode, so the failure below is the typo's.
			for _, variant := range []struct {
				doc     string
				wantErr bool
			}{{string(tc.src), false}, {strings.Replace(string(tc.src), tc.old, tc.new, 1), true}} {
				if variant.wantErr && variant.doc == string(tc.src) {
					t.Fatalf("%q not found in %s", tc.old, tc.file)
				}
				fsys := filesys.MakeFsInMemory()
				must(t, fsys.WriteFile("/k/"+tc.file, []byte(variant.doc)))
				must(t, fsys.WriteFile("/k/kustomization.yaml", []byte("resources:\n- "+tc.file+"\n")))
				m, err := render(fsys, "/k")
				if err == nil {
					_, err = decodeAll(m)
				}
				if variant.wantErr && err == nil {
					t.Error("typo accepted")
				}
				if !variant.wantErr && err != nil {
					t.Errorf("unmodified %s rejected: %v", tc.file, err)
				}
			}
		})
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
