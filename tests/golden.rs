//! Golden vectors from PyTorch (tests/golden/make_golden.py, float64
//! autograd): every reduction × weights × smoothing × probability targets ×
//! z-loss × softcap, on plain, ±1e4 and −inf-masked logits.

mod support;

use std::collections::HashMap;

use support::*;
use xent::loss::Reduction;

fn floats(s: &str) -> Vec<f64> {
    s.split_whitespace().map(|x| x.parse().unwrap_or_else(|_| panic!("bad float {x}"))).collect()
}

struct Golden {
    case: Case,
    loss: Vec<f64>,
    lse: Vec<f64>,
    grad: Vec<f64>,
    name: String,
}

fn parse() -> Vec<Golden> {
    let text = include_str!("golden/cases.txt");
    let mut out = Vec::new();
    let mut f: HashMap<&str, &str> = HashMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        if line == "end" {
            let shape: Vec<usize> = f["shape"].split_whitespace().map(|x| x.parse().unwrap()).collect();
            let (rows, cols) = (shape[0], shape[1]);
            let soft = f.contains_key("probs");
            let case = Case {
                rows,
                cols,
                stride: cols,
                logits: floats(f["logits"]).into_iter().map(|x| x as f32).collect(),
                labels: f.get("labels").map_or(vec![], |l| l.split_whitespace().map(|x| x.parse().unwrap()).collect()),
                probs: f.get("probs").map_or(vec![], |p| floats(p).into_iter().map(|x| x as f32).collect()),
                soft,
                weights: (f["weights"] != "none").then(|| floats(f["weights"]).into_iter().map(|x| x as f32).collect()),
                reduction: match f["reduction"] {
                    "mean" => Reduction::Mean,
                    "sum" => Reduction::Sum,
                    _ => Reduction::None,
                },
                ignore_index: f["ignore_index"].parse().unwrap(),
                smoothing: f["smoothing"].parse().unwrap(),
                z_loss: f["zloss"].parse().unwrap(),
                softcap: f["softcap"].parse().unwrap(),
            };
            out.push(Golden {
                case,
                loss: floats(f["loss"]),
                lse: floats(f["lse"]),
                grad: floats(f["grad"]),
                name: f["case"].to_string(),
            });
            f.clear();
        } else if let Some((k, v)) = line.split_once(' ') {
            f.insert(k, v);
        }
    }
    out
}

#[test]
fn matches_pytorch_golden_vectors() {
    let cases = parse();
    assert!(cases.len() > 500, "golden file has {} cases", cases.len());
    for g in &cases {
        let c = &g.case;
        let tol = if c.softcap > 0.0 { 1e-5 } else { 2e-6 };
        for in_place in [false, true] {
            let f = fused(c, in_place, |_| {});
            for (i, (&got, &want)) in f.loss.iter().zip(&g.loss).enumerate() {
                assert!(close(f64::from(got), want, tol, 1e-6), "case {}: loss[{i}] {got} vs torch {want}", g.name);
            }
            for (i, (&got, &want)) in f.lse.iter().zip(&g.lse).enumerate() {
                assert!(close(f64::from(got), want, 1e-6, 1e-6), "case {}: lse[{i}] {got} vs torch {want}", g.name);
            }
            // f32 P − Y cancels: its error is relative to the terms subtracted.
            let terms = c.reference().grad_terms;
            for (k, (&got, &want)) in f.grad.iter().zip(&g.grad).enumerate() {
                let abs = 4.0 * f64::from(f32::EPSILON) * terms[k / c.cols] + 1e-9;
                assert!(close(f64::from(got), want, tol, abs), "case {}: grad[{k}] {got} vs torch {want}", g.name);
            }
        }
    }
}
