module benchgo

go 1.25.4

// The eKuiper Go SDK at the commit of eKuiper's v2.4.0 tag (36c985bf). The SDK has no
// tags of its own, hence the pseudo-version; bench/env.py supplies a local copy through
// a go.work when the module proxy does not serve it.
require github.com/lf-edge/ekuiper/sdk/go v0.0.0-20260519071446-36c985bfcb36
