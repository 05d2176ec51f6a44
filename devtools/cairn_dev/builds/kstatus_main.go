// Command kstatus prints what the kstatus library (sigs.k8s.io/cli-utils/pkg/kstatus/status) computes
// for Kubernetes objects: the status kubectl/kpt/Flux/Config Sync read from them.
//
// It reads JSON from stdin (no arguments, or "-") or from the files named: one object, a List
// (`kubectl get -o json`), a JSON array of objects, or several JSON documents one after another. For
// every object it prints one JSON line:
//
//	{"apiVersion":"cairn.dev/v1alpha1","kind":"Run","namespace":"ns","name":"r","status":"Current","message":"..."}
//
// status is InProgress, Current, Failed, Terminating, NotFound or Unknown (the last when status.Compute
// returns an error, which is then the message). The exit code is 0 when every object was read and
// computed, 1 when one could not be computed, 2 on unreadable input. `kstatus -version` prints the
// cli-utils module version it was built with.
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

type record struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Namespace  string `json:"namespace,omitempty"`
	Name       string `json:"name"`
	Status     string `json:"status"`
	Message    string `json:"message"`
}

func cliUtilsVersion() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	for _, dep := range info.Deps {
		if dep.Path == "sigs.k8s.io/cli-utils" {
			return dep.Version
		}
	}
	return "unknown"
}

// objects turns one decoded JSON value into the objects it holds (a List's items, an array's elements).
func objects(v interface{}) ([]map[string]interface{}, error) {
	switch t := v.(type) {
	case map[string]interface{}:
		kind, _ := t["kind"].(string)
		if items, ok := t["items"].([]interface{}); ok && strings.HasSuffix(kind, "List") {
			return objects(items)
		}
		return []map[string]interface{}{t}, nil
	case []interface{}:
		var out []map[string]interface{}
		for _, e := range t {
			objs, err := objects(e)
			if err != nil {
				return nil, err
			}
			out = append(out, objs...)
		}
		return out, nil
	default:
		return nil, fmt.Errorf("expected a JSON object, List or array, got %T", v)
	}
}

func compute(obj map[string]interface{}) (record, bool) {
	u := &unstructured.Unstructured{Object: obj}
	rec := record{APIVersion: u.GetAPIVersion(), Kind: u.GetKind(), Namespace: u.GetNamespace(), Name: u.GetName()}
	res, err := status.Compute(u)
	if err != nil {
		rec.Status, rec.Message = "Unknown", err.Error()
		return rec, false
	}
	rec.Status, rec.Message = res.Status.String(), res.Message
	return rec, true
}

func process(name string, r io.Reader, out *json.Encoder) (bool, error) {
	dec := json.NewDecoder(bufio.NewReader(r))
	dec.UseNumber()
	ok := true
	for {
		var v interface{}
		err := dec.Decode(&v)
		if errors.Is(err, io.EOF) {
			return ok, nil
		}
		if err != nil {
			return ok, fmt.Errorf("%s: not JSON: %w", name, err)
		}
		objs, err := objects(v)
		if err != nil {
			return ok, fmt.Errorf("%s: %w", name, err)
		}
		for _, obj := range objs {
			rec, good := compute(normalize(obj).(map[string]interface{}))
			ok = ok && good
			if err := out.Encode(rec); err != nil {
				return ok, err
			}
		}
	}
}

// normalize turns json.Number into int64 or float64, the types unstructured's accessors expect.
func normalize(v interface{}) interface{} {
	switch t := v.(type) {
	case map[string]interface{}:
		for k, e := range t {
			t[k] = normalize(e)
		}
		return t
	case []interface{}:
		for i, e := range t {
			t[i] = normalize(e)
		}
		return t
	case json.Number:
		if i, err := t.Int64(); err == nil {
			return i
		}
		f, _ := t.Float64()
		return f
	default:
		return v
	}
}

func main() {
	version := flag.Bool("version", false, "print the sigs.k8s.io/cli-utils version and exit")
	flag.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: kstatus [-version] [FILE.json ... | -]\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if *version {
		fmt.Println(cliUtilsVersion())
		return
	}
	files := flag.Args()
	if len(files) == 0 {
		files = []string{"-"}
	}
	out := json.NewEncoder(os.Stdout)
	allOK := true
	for _, name := range files {
		var r io.Reader = os.Stdin
		if name != "-" {
			f, err := os.Open(name)
			if err != nil {
				fmt.Fprintln(os.Stderr, "kstatus:", err)
				os.Exit(2)
			}
			defer f.Close()
			r = f
		} else {
			name = "stdin"
		}
		ok, err := process(name, r, out)
		if err != nil {
			fmt.Fprintln(os.Stderr, "kstatus:", err)
			os.Exit(2)
		}
		allOK = allOK && ok
	}
	if !allOK {
		os.Exit(1)
	}
}
