"""deploy/kubernetes: the manifests run the image as it is built (user, entrypoint, healthcheck,
volumes) and keep within a restricted, read-only pod."""

from __future__ import annotations

from tests.deploy import manifests as m

WRITTEN = ("/tmp", "/kuiper/etc", "/kuiper/data", "/kuiper/plugins", "/kuiper/log")


def _statefulset() -> m.Obj:
    return m.one(m.manifests(), "StatefulSet")


def _spec() -> m.Obj:
    return m.pod_spec(_statefulset())


def _slim() -> str:
    return m.SLIM_DOCKERFILE.read_text()


def test_kustomization_lists_every_manifest() -> None:
    """`kubectl apply -k` applies every manifest file of deploy/kubernetes."""
    [kustomization] = m.load_file(m.KUBERNETES / "kustomization.yaml")
    files = {p.name for p in m.KUBERNETES.glob("*.yaml")} - {"kustomization.yaml"}
    assert sorted(kustomization["resources"]) == sorted(files)


def test_every_container_runs_the_slim_python_image() -> None:
    """Init and main containers run the image compose.yaml runs, so one override moves both."""
    images = {c["image"] for c in m.containers(_spec())}
    assert images == {m.compose_image()}


def test_entrypoint_is_kept() -> None:
    """No command or args: the image's entrypoint installs the baked-in plugins, then kuiperd."""
    container = m.main_container(_spec())
    assert "command" not in container and "args" not in container


def test_dropin_folder_is_not_under_a_volume() -> None:
    """The folder the entrypoint installs from stays the image's; plugins/ is a volume."""
    container = m.main_container(_spec())
    source = m.env(container).get("EKUIPER_DROPIN_PLUGINS",
                                  m.image_env(_slim())["EKUIPER_DROPIN_PLUGINS"])
    assert "/kuiper/plugins" in m.mounts(container)
    assert not [path for path in m.mounts(container) if m.under(source, path)]


def test_read_only_root_has_a_volume_for_every_path_written() -> None:
    """With a read-only root, eKuiper's home folders and /tmp (the IPC sockets) are volumes."""
    spec = _spec()
    container = m.main_container(spec)
    assert m.effective(spec, container, "readOnlyRootFilesystem") is True
    claims = {t["metadata"]["name"] for t in _statefulset()["spec"]["volumeClaimTemplates"]}
    volumes = {v["name"] for v in spec["volumes"]} | claims
    for path in WRITTEN:
        assert m.mounts(container).get(path) in volumes, path


def test_data_is_one_claim_per_instance() -> None:
    """Rules and state live on the pod's own claim (volumeClaimTemplates), not a shared volume."""
    spec = _spec()
    claim = m.mounts(m.main_container(spec))["/kuiper/data"]
    templates = _statefulset()["spec"]["volumeClaimTemplates"]
    assert claim in {t["metadata"]["name"] for t in templates}
    assert claim not in {v["name"] for v in spec["volumes"]}
    [template] = [t for t in templates if t["metadata"]["name"] == claim]
    assert template["spec"]["accessModes"] == ["ReadWriteOnce"]


def test_seed_copies_the_image_folders_into_the_volumes() -> None:
    """The init container fills etc and plugins from the image before kuiperd sees them empty."""
    spec = _spec()
    [seed] = spec["initContainers"]
    main = m.mounts(m.main_container(spec))
    seeded = {name: path for path, name in m.mounts(seed).items()}
    script = " ".join(seed["command"])
    for folder in ("/kuiper/etc", "/kuiper/plugins"):
        target = seeded[main[folder]]
        assert f"cp -R {folder}/. {target}/" in script, folder
    # The seed mounts nothing over the folders it copies from.
    assert not [p for p in m.mounts(seed) for f in ("/kuiper/etc", "/kuiper/plugins")
                if m.under(f, p)]


def test_probes_request_the_image_healthcheck() -> None:
    """Startup, readiness and liveness probes ask what the image's HEALTHCHECK asks."""
    container = m.main_container(_spec())
    path, port = m.healthcheck(_slim())
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        request = container[probe]["httpGet"]
        assert (request.get("path", "/"), m.port_number(container, request["port"])) == (
            path, port), probe


def test_pod_runs_as_the_image_user() -> None:
    """uid, gid and fsGroup are the image's kuiper user; root is refused."""
    spec = _spec()
    uid = m.image_uid(_slim())
    assert spec["securityContext"]["fsGroup"] == uid
    for container in m.containers(spec):
        assert m.effective(spec, container, "runAsNonRoot") is True
        assert m.effective(spec, container, "runAsUser") == uid
        assert m.effective(spec, container, "runAsGroup") == uid


def test_containers_have_no_privileges() -> None:
    """No capabilities, no privilege escalation, read-only root, default seccomp profile."""
    spec = _spec()
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert spec["automountServiceAccountToken"] is False
    for container in m.containers(spec):
        context = container["securityContext"]
        assert context["allowPrivilegeEscalation"] is False
        assert context["capabilities"] == {"drop": ["ALL"]}
        assert context["readOnlyRootFilesystem"] is True


def test_containers_have_requests_and_limits() -> None:
    """Every container states the CPU and memory it requests and may use."""
    for container in m.containers(_spec()):
        resources = container["resources"]
        for kind in ("requests", "limits"):
            assert set(resources[kind]) == {"cpu", "memory"}, (container["name"], kind)


def test_services_reach_the_rest_port() -> None:
    """Both Services select the pods and send their port to the REST port of the image."""
    objects = m.manifests()
    statefulset = m.one(objects, "StatefulSet")
    labels = statefulset["spec"]["template"]["metadata"]["labels"]
    container = m.main_container(m.pod_spec(statefulset))
    _, rest_port = m.healthcheck(_slim())
    services = [o for o in objects if o["kind"] == "Service"]
    assert len(services) == 2
    for service in services:
        assert service["spec"]["selector"].items() <= labels.items()
        [port] = service["spec"]["ports"]
        assert m.port_number(container, port["targetPort"]) == rest_port
    assert statefulset["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_headless_service_names_each_pod() -> None:
    """The StatefulSet's serviceName is the headless Service: one DNS name per instance."""
    objects = m.manifests()
    name = m.one(objects, "StatefulSet")["spec"]["serviceName"]
    assert m.one(objects, "Service", name)["spec"]["clusterIP"] == "None"
