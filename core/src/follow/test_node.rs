//! A scripted node for unit tests (tokio): each JSON-RPC call is answered by
//! a function of its method and parameters, whatever the order of the calls.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use alloy::providers::{Provider, ProviderBuilder};
use alloy::rpc::client::RpcClient;
use alloy::rpc::json_rpc::{RequestPacket, ResponsePacket};
use alloy::transports::{TransportError, TransportFut};
use serde_json::{json, Value};

use crate::rpc::NodeClient;

type Answer = dyn Fn(&str, &Value) -> Result<Value, Value> + Send + Sync;

/// A transport whose answers come from a function: `Ok(result)` or
/// `Err(error object)`.
#[derive(Clone)]
struct Scripted {
    answer: Arc<Answer>,
    calls: Arc<AtomicUsize>,
}

impl tower::Service<RequestPacket> for Scripted {
    type Response = ResponsePacket;
    type Error = TransportError;
    type Future = TransportFut<'static>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: RequestPacket) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let text = request.serialize().expect("a request serializes");
            let request: Value = serde_json::from_str(text.get()).expect("a request is JSON");
            let answer_one = |call: &Value| {
                this.calls.fetch_add(1, Ordering::Relaxed);
                let method = call["method"].as_str().unwrap_or_default();
                match (this.answer)(method, &call["params"]) {
                    Ok(result) => json!({"jsonrpc": "2.0", "id": call["id"], "result": result}),
                    Err(error) => json!({"jsonrpc": "2.0", "id": call["id"], "error": error}),
                }
            };
            let response = match &request {
                Value::Array(calls) => Value::Array(calls.iter().map(answer_one).collect()),
                call => answer_one(call),
            };
            Ok(serde_json::from_value(response).expect("a response packet"))
        })
    }
}

/// A node answered by `answer`, and the count of calls it has answered.
pub(crate) fn scripted_node(
    answer: impl Fn(&str, &Value) -> Result<Value, Value> + Send + Sync + 'static,
) -> (NodeClient, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let transport = Scripted {
        answer: Arc::new(answer),
        calls: calls.clone(),
    };
    let provider = ProviderBuilder::new()
        .connect_client(RpcClient::new(transport, true))
        .erased();
    let client = NodeClient::from_provider("scripted", provider, Duration::from_secs(5));
    (client, calls)
}

/// A node whose block `n` is `block(n)`, for `eth_getBlockByNumber`.
pub(crate) fn node_answering(
    block: impl Fn(u64) -> Value + Send + Sync + 'static,
) -> (NodeClient, Arc<AtomicUsize>) {
    scripted_node(move |method, params| match method {
        "eth_getBlockByNumber" => {
            let number = params[0].as_str().unwrap_or_default();
            let number = u64::from_str_radix(number.trim_start_matches("0x"), 16)
                .map_err(|e| json!({"code": -32602, "message": e.to_string()}))?;
            Ok(block(number))
        }
        other => Err(json!({"code": -32601, "message": format!("{other} not scripted")})),
    })
}

/// Block `number` with timestamp `timestamp`, as a node renders it.
pub(crate) fn block_at(number: u64, timestamp: u64) -> Value {
    let hash = |n: u64| format!("0x{:064x}", n.wrapping_add(1));
    json!({
        "hash": hash(number),
        "parentHash": hash(number.wrapping_sub(1)),
        "sha3Uncles": format!("0x{:064x}", 0),
        "miner": format!("0x{:040x}", 0),
        "stateRoot": format!("0x{:064x}", 0),
        "transactionsRoot": format!("0x{:064x}", 0),
        "receiptsRoot": format!("0x{:064x}", 0),
        "logsBloom": format!("0x{}", "0".repeat(512)),
        "difficulty": "0x0",
        "number": format!("0x{number:x}"),
        "gasLimit": "0x1c9c380",
        "gasUsed": "0x0",
        "timestamp": format!("0x{timestamp:x}"),
        "extraData": "0x",
        "mixHash": format!("0x{:064x}", 0),
        "nonce": "0x0000000000000000",
        "size": "0x200",
        "uncles": [],
        "transactions": [],
    })
}
