//! The Task service on the fake runtime: every state transition of a task and its
//! execs, the codes of refused requests, and runtime errors passed through.

use std::time::Duration;

use containerd_shim::api;
use containerd_shim_protos::protobuf::well_known_types::any::Any;
use containerd_shim_protos::protobuf::{Message, MessageField};
use containerd_shim_protos::ttrpc::Code;
use rvisor_api::ErrorKind;

use crate::error::Error;
use crate::fake;

const SIGTERM: u32 = 15;
const SIGKILL: u32 = 9;

fn create_req(id: &str) -> api::CreateTaskRequest {
    api::CreateTaskRequest {
        id: id.into(),
        bundle: format!("/nonexistent/bundles/{id}"),
        stdout: "/fifo/out".into(),
        ..Default::default()
    }
}

fn start_req(id: &str, exec_id: &str) -> api::StartRequest {
    api::StartRequest {
        id: id.into(),
        exec_id: exec_id.into(),
        ..Default::default()
    }
}

fn state_req(id: &str, exec_id: &str) -> api::StateRequest {
    api::StateRequest {
        id: id.into(),
        exec_id: exec_id.into(),
        ..Default::default()
    }
}

fn kill_req(id: &str, exec_id: &str, signal: u32) -> api::KillRequest {
    api::KillRequest {
        id: id.into(),
        exec_id: exec_id.into(),
        signal,
        ..Default::default()
    }
}

fn wait_req(id: &str, exec_id: &str) -> api::WaitRequest {
    api::WaitRequest {
        id: id.into(),
        exec_id: exec_id.into(),
        ..Default::default()
    }
}

fn delete_req(id: &str, exec_id: &str) -> api::DeleteRequest {
    api::DeleteRequest {
        id: id.into(),
        exec_id: exec_id.into(),
        ..Default::default()
    }
}

fn exec_req(id: &str, exec_id: &str) -> api::ExecProcessRequest {
    let mut spec = Any::new();
    spec.value = br#"{"args":["/bin/true"],"cwd":"/"}"#.to_vec();
    api::ExecProcessRequest {
        id: id.into(),
        exec_id: exec_id.into(),
        spec: MessageField::some(spec),
        ..Default::default()
    }
}

fn status<R: crate::runtime::Runtime>(
    s: &crate::service::Service<R>,
    id: &str,
    exec_id: &str,
) -> api::Status {
    s.state(&state_req(id, exec_id)).unwrap().status.unwrap()
}

fn code<T: std::fmt::Debug>(r: Result<T, Error>) -> Code {
    r.unwrap_err().code()
}

/// Waits for the fake's asynchronous exit to reach the service.
fn wait_status<R: crate::runtime::Runtime>(
    s: &crate::service::Service<R>,
    id: &str,
    exec_id: &str,
    want: api::Status,
) {
    for _ in 0..500 {
        if status(s, id, exec_id) == want {
            return;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    panic!("{id}/{exec_id} never became {want:?}");
}

#[test]
fn create_start_kill_wait_delete() {
    let (s, fake, events) = fake::service();
    let pid = s.create(&create_req("c")).unwrap().pid;
    assert!(pid > 0);
    let st = s.state(&state_req("c", "")).unwrap();
    assert_eq!(st.status.unwrap(), api::Status::CREATED);
    assert_eq!((st.pid, st.stdout.as_str()), (pid, "/fifo/out"));
    assert_eq!(s.init_pid("c"), pid);

    assert_eq!(s.start(&start_req("c", "")).unwrap().pid, pid);
    assert_eq!(status(&s, "c", ""), api::Status::RUNNING);

    s.kill(&kill_req("c", "", SIGTERM)).unwrap();
    let w = s.wait(&wait_req("c", "")).unwrap();
    assert_eq!(w.exit_status, 128 + SIGTERM);
    assert!(w.exited_at.is_some());
    let st = s.state(&state_req("c", "")).unwrap();
    assert_eq!(st.status.unwrap(), api::Status::STOPPED);
    assert_eq!(st.exit_status, 128 + SIGTERM);

    let d = s.delete(&delete_req("c", "")).unwrap();
    assert_eq!((d.pid, d.exit_status), (pid, 128 + SIGTERM));
    assert_eq!(code(s.state(&state_req("c", ""))), Code::NOT_FOUND);
    assert!(s.is_empty());
    assert_eq!(
        events.take(4),
        [
            "/tasks/create",
            "/tasks/start",
            "/tasks/exit",
            "/tasks/delete"
        ]
    );
    assert_eq!(
        *fake.calls.lock().unwrap(),
        ["create c", "start c", "watch_oom c", "kill c", "delete c"]
    );
}

#[test]
fn a_created_container_can_be_deleted() {
    let (s, _fake, events) = fake::service();
    s.create(&create_req("c")).unwrap();
    // The runtime's delete kills the process; its exit is the delete's status.
    let d = s.delete(&delete_req("c", "")).unwrap();
    assert_eq!(d.exit_status, 128 + SIGKILL);
    assert_eq!(code(s.state(&state_req("c", ""))), Code::NOT_FOUND);
    assert_eq!(
        events.take(3),
        ["/tasks/create", "/tasks/exit", "/tasks/delete"]
    );
}

#[test]
fn a_created_container_can_be_killed() {
    let (s, _fake, _) = fake::service();
    s.create(&create_req("c")).unwrap();
    s.kill(&kill_req("c", "", SIGKILL)).unwrap();
    assert_eq!(
        s.wait(&wait_req("c", "")).unwrap().exit_status,
        128 + SIGKILL
    );
    assert_eq!(status(&s, "c", ""), api::Status::STOPPED);
    assert_eq!(
        code(s.start(&start_req("c", ""))),
        Code::FAILED_PRECONDITION
    );
}

#[test]
fn an_exit_before_registration_is_kept() {
    let (s, fake, events) = fake::service();
    *fake.exit_at_create.lock().unwrap() = Some(3);
    s.create(&create_req("c")).unwrap();
    assert_eq!(s.wait(&wait_req("c", "")).unwrap().exit_status, 3);
    assert_eq!(status(&s, "c", ""), api::Status::STOPPED);
    assert_eq!(events.take(2), ["/tasks/create", "/tasks/exit"]);
}

#[test]
fn pause_and_resume() {
    let (s, _fake, events) = fake::service();
    s.create(&create_req("c")).unwrap();
    assert_eq!(code(s.freeze("c", true)), Code::FAILED_PRECONDITION);
    s.start(&start_req("c", "")).unwrap();
    assert_eq!(code(s.freeze("c", false)), Code::FAILED_PRECONDITION);
    s.freeze("c", true).unwrap();
    assert_eq!(status(&s, "c", ""), api::Status::PAUSED);
    assert_eq!(code(s.freeze("c", true)), Code::FAILED_PRECONDITION);
    // A paused container cannot be deleted, but it can be killed.
    assert_eq!(
        code(s.delete(&delete_req("c", ""))),
        Code::FAILED_PRECONDITION
    );
    s.freeze("c", false).unwrap();
    assert_eq!(status(&s, "c", ""), api::Status::RUNNING);
    s.freeze("c", true).unwrap();
    s.kill(&kill_req("c", "", SIGKILL)).unwrap();
    wait_status(&s, "c", "", api::Status::STOPPED);
    assert_eq!(code(s.freeze("c", false)), Code::FAILED_PRECONDITION);
    assert_eq!(
        events.take(6),
        [
            "/tasks/create",
            "/tasks/start",
            "/tasks/paused",
            "/tasks/resumed",
            "/tasks/paused",
            "/tasks/exit"
        ]
    );
}

#[test]
fn exec_add_start_kill_delete() {
    let (s, fake, events) = fake::service();
    s.create(&create_req("c")).unwrap();
    s.start(&start_req("c", "")).unwrap();
    events.take(2);

    s.exec(&exec_req("c", "e1")).unwrap();
    let st = s.state(&state_req("c", "e1")).unwrap();
    assert_eq!((st.status.unwrap(), st.pid), (api::Status::CREATED, 0));
    let pid = s.start(&start_req("c", "e1")).unwrap().pid;
    assert!(pid > 0);
    let st = s.state(&state_req("c", "e1")).unwrap();
    assert_eq!((st.status.unwrap(), st.pid), (api::Status::RUNNING, pid));
    let pids = s
        .pids(&api::PidsRequest {
            id: "c".into(),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(pids.processes.len(), 2);

    s.kill(&kill_req("c", "e1", SIGTERM)).unwrap();
    assert_eq!(
        s.wait(&wait_req("c", "e1")).unwrap().exit_status,
        128 + SIGTERM
    );
    assert_eq!(status(&s, "c", "e1"), api::Status::STOPPED);
    // The container runs on.
    assert_eq!(status(&s, "c", ""), api::Status::RUNNING);
    assert_eq!(code(s.kill(&kill_req("c", "e1", SIGTERM))), Code::NOT_FOUND);

    let d = s.delete(&delete_req("c", "e1")).unwrap();
    assert_eq!((d.pid, d.exit_status), (pid, 128 + SIGTERM));
    assert_eq!(code(s.state(&state_req("c", "e1"))), Code::NOT_FOUND);
    assert_eq!(code(s.delete(&delete_req("c", "e1"))), Code::NOT_FOUND);
    assert_eq!(
        events.take(3),
        ["/tasks/exec-added", "/tasks/exec-started", "/tasks/exit"]
    );
    assert!(fake
        .calls
        .lock()
        .unwrap()
        .ends_with(&["kill_exec c".to_string(), "delete_exec c".to_string()]));
}

#[test]
fn an_exec_never_started_can_be_deleted() {
    let (s, _fake, _) = fake::service();
    s.create(&create_req("c")).unwrap();
    s.start(&start_req("c", "")).unwrap();
    s.exec(&exec_req("c", "e")).unwrap();
    assert_eq!(
        code(s.kill(&kill_req("c", "e", SIGTERM))),
        Code::FAILED_PRECONDITION
    );
    let d = s.delete(&delete_req("c", "e")).unwrap();
    assert_eq!((d.pid, d.exit_status), (0, 0));
    // The id is free again.
    s.exec(&exec_req("c", "e")).unwrap();
}

#[test]
fn refused_requests_get_their_codes() {
    let (s, _fake, _) = fake::service();
    // Unknown container, unknown exec.
    assert_eq!(code(s.state(&state_req("nope", ""))), Code::NOT_FOUND);
    assert_eq!(code(s.start(&start_req("nope", ""))), Code::NOT_FOUND);
    assert_eq!(code(s.kill(&kill_req("nope", "", 9))), Code::NOT_FOUND);
    assert_eq!(code(s.delete(&delete_req("nope", ""))), Code::NOT_FOUND);

    s.create(&create_req("c")).unwrap();
    assert_eq!(code(s.create(&create_req("c"))), Code::ALREADY_EXISTS);
    assert_eq!(code(s.state(&state_req("c", "x"))), Code::NOT_FOUND);
    // exec needs a running container.
    assert_eq!(code(s.exec(&exec_req("c", "e"))), Code::FAILED_PRECONDITION);
    s.start(&start_req("c", "")).unwrap();
    assert_eq!(
        code(s.start(&start_req("c", ""))),
        Code::FAILED_PRECONDITION
    );
    assert_eq!(
        code(s.delete(&delete_req("c", ""))),
        Code::FAILED_PRECONDITION
    );
    // Malformed execs.
    assert_eq!(code(s.exec(&exec_req("c", ""))), Code::INVALID_ARGUMENT);
    assert_eq!(code(s.exec(&exec_req("c", "a/b"))), Code::INVALID_ARGUMENT);
    let mut no_spec = exec_req("c", "e");
    no_spec.spec = MessageField::none();
    assert_eq!(code(s.exec(&no_spec)), Code::INVALID_ARGUMENT);

    s.exec(&exec_req("c", "e")).unwrap();
    assert_eq!(code(s.exec(&exec_req("c", "e"))), Code::ALREADY_EXISTS);
    s.start(&start_req("c", "e")).unwrap();
    assert_eq!(
        code(s.start(&start_req("c", "e"))),
        Code::FAILED_PRECONDITION
    );
    assert_eq!(
        code(s.delete(&delete_req("c", "e"))),
        Code::FAILED_PRECONDITION
    );
    // No terminal to resize.
    let resize = api::ResizePtyRequest {
        id: "c".into(),
        width: 80,
        height: 24,
        ..Default::default()
    };
    assert_eq!(code(s.resize_pty(&resize)), Code::FAILED_PRECONDITION);
    // No resources to update with.
    let upd = api::UpdateTaskRequest {
        id: "c".into(),
        ..Default::default()
    };
    assert_eq!(code(s.update(&upd)), Code::INVALID_ARGUMENT);

    s.kill(&kill_req("c", "", SIGKILL)).unwrap();
    wait_status(&s, "c", "", api::Status::STOPPED);
    assert_eq!(code(s.kill(&kill_req("c", "", SIGKILL))), Code::NOT_FOUND);
    assert_eq!(
        code(s.start(&start_req("c", ""))),
        Code::FAILED_PRECONDITION
    );
}

#[test]
fn runtime_errors_pass_through_and_change_no_state() {
    let (s, fake, events) = fake::service();
    fake.fail_next(
        "create",
        Error::from_rvisor(
            ErrorKind::AlreadyExists,
            "container \"c\" already exists".into(),
        ),
    );
    assert_eq!(code(s.create(&create_req("c"))), Code::ALREADY_EXISTS);
    assert_eq!(code(s.state(&state_req("c", ""))), Code::NOT_FOUND);

    s.create(&create_req("c")).unwrap();
    fake.fail_next(
        "start",
        Error::from_rvisor(
            ErrorKind::NotRunning,
            "container \"c\" is not running".into(),
        ),
    );
    assert_eq!(code(s.start(&start_req("c", ""))), Code::NOT_FOUND);
    assert_eq!(status(&s, "c", ""), api::Status::CREATED);
    s.start(&start_req("c", "")).unwrap();

    fake.fail_next(
        "pause",
        Error::from_rvisor(ErrorKind::Other, "frozen".into()),
    );
    let e = s.freeze("c", true).unwrap_err();
    assert_eq!((e.code(), e.message()), (Code::UNKNOWN, "frozen"));
    assert_eq!(status(&s, "c", ""), api::Status::RUNNING);

    s.exec(&exec_req("c", "e")).unwrap();
    fake.fail_next(
        "exec",
        Error::from_rvisor(ErrorKind::InvalidArgument, "bad process".into()),
    );
    assert_eq!(code(s.start(&start_req("c", "e"))), Code::INVALID_ARGUMENT);
    assert_eq!(status(&s, "c", "e"), api::Status::CREATED);

    fake.fail_next("delete", Error::Internal("spawn".into()));
    s.kill(&kill_req("c", "", SIGKILL)).unwrap();
    wait_status(&s, "c", "", api::Status::STOPPED);
    assert_eq!(code(s.delete(&delete_req("c", ""))), Code::INTERNAL);
    // Still there, and deletable once the runtime agrees.
    s.delete(&delete_req("c", "")).unwrap();
    assert_eq!(
        events.take(5),
        [
            "/tasks/create",
            "/tasks/start",
            "/tasks/exec-added",
            "/tasks/exit",
            "/tasks/delete"
        ]
    );
}

#[test]
fn stats_arrive_as_cgroup_metrics() {
    let (s, _fake, _) = fake::service();
    s.create(&create_req("c")).unwrap();
    let r = s
        .stats(&api::StatsRequest {
            id: "c".into(),
            ..Default::default()
        })
        .unwrap();
    let any = r.stats.unwrap();
    assert_eq!(any.type_url, crate::metrics::METRICS_V1);
    let m =
        containerd_shim_protos::cgroups::metrics::Metrics::parse_from_bytes(&any.value).unwrap();
    assert_eq!((m.pids.current, m.cpu.usage.total), (1, 42));
    let upd = api::UpdateTaskRequest {
        id: "c".into(),
        resources: MessageField::some(Any {
            value: br#"{"pids":{"limit":5}}"#.to_vec(),
            ..Default::default()
        }),
        ..Default::default()
    };
    s.update(&upd).unwrap();
}

#[test]
fn errors_reach_containerd_as_ttrpc_statuses() {
    let (s, _fake, _) = fake::service();
    let e = s.state(&state_req("nope", "")).unwrap_err();
    match containerd_shim_protos::ttrpc::Error::from(e) {
        containerd_shim_protos::ttrpc::Error::RpcStatus(st) => {
            assert_eq!(st.code(), Code::NOT_FOUND);
            assert!(st.message.contains("nope"), "{}", st.message);
        }
        other => panic!("{other:?}"),
    }
}

/// Each OOM kill the runtime reports for a started container is a TaskOOM event
/// (`/tasks/oom`) naming it; a container that cannot be watched still starts.
#[test]
fn oom_kills_are_task_oom_events() {
    let (s, fake, events) = fake::service();
    s.create(&create_req("a")).unwrap();
    s.create(&create_req("b")).unwrap();
    // Not watched before it starts.
    assert!(!fake.oom("a"));
    s.start(&start_req("a", "")).unwrap();
    fake.fail_next("watch_oom", Error::Unknown("no cgroup".into()));
    s.start(&start_req("b", "")).unwrap();
    assert_eq!(status(&s, "b", ""), api::Status::RUNNING);
    assert!(!fake.oom("b"));
    assert!(fake.oom("a"));
    assert!(fake.oom("a"));
    assert_eq!(
        events.take(6),
        [
            "/tasks/create",
            "/tasks/create",
            "/tasks/start",
            "/tasks/start",
            "/tasks/oom",
            "/tasks/oom"
        ]
    );
    assert_eq!(*events.1.lock().unwrap(), ["a", "a"]);
    // The watch ends with the container.
    s.kill(&kill_req("a", "", SIGKILL)).unwrap();
    s.wait(&wait_req("a", "")).unwrap();
    s.delete(&delete_req("a", "")).unwrap();
    assert!(!fake.oom("a"));
}
