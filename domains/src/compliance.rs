//! Compliance frameworks as data: each framework's real control references, which decisions evidence
//! each control, and the default mapping from a decision to the controls it evidences.
//!
//! The table is static and allocation-free to search. A mapping depends only on the outcome's class
//! ([`ComplianceOutcome`]), so a [`ComplianceTable`] holds a plugin's mappings for every class, built
//! once when a policy is compiled; a decision then shares one (built-in framework and control ids
//! are borrowed from the static table).
//! This module states what a recorded decision *evidences*; it never claims certification and never
//! changes a verdict.

use std::borrow::Cow;
use std::sync::Arc;

use crate::model::{ComplianceFramework, ControlRef, DomainConfig, EvidencedWhen};
use crate::outcome::{ComplianceMapping, ComplianceOutcome, ComplianceStatus, Verdict};
use crate::plugin::DomainPlugin;

use EvidencedWhen::{Always, Blocked, Oversight};

struct StaticFramework {
    id: &'static str,
    name: &'static str,
    controls: &'static [(&'static str, &'static str, EvidencedWhen)],
}

static FRAMEWORKS: &[StaticFramework] = &[
    StaticFramework {
        id: "EU_AI_ACT",
        name: "EU Artificial Intelligence Act (Regulation (EU) 2024/1689)",
        controls: &[
            ("Art. 9", "Risk management system", Blocked),
            ("Art. 12", "Record-keeping (automatic logging of events)", Always),
            ("Art. 14", "Human oversight", Oversight),
        ],
    },
    StaticFramework {
        id: "GDPR",
        name: "General Data Protection Regulation (Regulation (EU) 2016/679)",
        controls: &[
            ("Art. 5", "Principles relating to processing of personal data (accountability, integrity and confidentiality)", Always),
            ("Art. 30", "Records of processing activities", Always),
            ("Art. 32", "Security of processing", Blocked),
        ],
    },
    StaticFramework {
        id: "SOC2",
        name: "AICPA SOC 2 Trust Services Criteria (2017, rev. 2022)",
        controls: &[
            ("CC6.1", "Logical access security over protected information assets", Always),
            ("CC7.2", "Monitoring of system components for anomalies", Always),
            ("CC7.3", "Evaluation of security events", Blocked),
        ],
    },
    StaticFramework {
        id: "ISO_27001",
        name: "ISO/IEC 27001:2022 Annex A",
        controls: &[
            ("A.5.15", "Access control", Always),
            ("A.8.15", "Logging", Always),
            ("A.8.16", "Monitoring activities", Blocked),
        ],
    },
    StaticFramework {
        id: "MIFID_II",
        name: "MiFID II (Directive 2014/65/EU) and RTS 6 (Delegated Regulation (EU) 2017/589)",
        controls: &[
            ("RTS 6 Art. 15", "Pre-trade controls on order entry", Always),
            ("Art. 17", "Algorithmic trading: effective systems and risk controls", Always),
        ],
    },
    StaticFramework {
        id: "SEC_RULE_613",
        name: "SEC Rule 613 (Consolidated Audit Trail)",
        controls: &[("Rule 613(c)", "Recording and reporting of order events", Always)],
    },
    StaticFramework {
        id: "SEC_15C3_5",
        name: "SEC Rule 15c3-5 (Market Access Rule)",
        controls: &[
            ("15c3-5(c)(1)(i)", "Prevent orders exceeding pre-set credit or capital thresholds", Always),
            ("15c3-5(c)(1)(ii)", "Prevent erroneous orders (price or size parameters)", Always),
        ],
    },
    StaticFramework {
        id: "DODD_FRANK",
        name: "Dodd-Frank Wall Street Reform and Consumer Protection Act",
        controls: &[
            ("17 CFR 23.202", "Daily trading records", Always),
            ("Sec. 747", "Disruptive trading practices (CEA 4c(a)(5))", Blocked),
        ],
    },
    StaticFramework {
        id: "BASEL_III",
        name: "Basel III framework (BCBS)",
        controls: &[
            ("BCBS 239 Principle 3", "Accuracy and integrity of risk data", Always),
            ("LEX20", "Large exposures limit", Blocked),
        ],
    },
    StaticFramework {
        id: "HIPAA",
        name: "HIPAA Security and Privacy Rules (45 CFR Parts 160 and 164)",
        controls: &[
            ("164.312(a)(1)", "Access control", Always),
            ("164.312(b)", "Audit controls", Always),
            ("164.508", "Uses and disclosures for which an authorization is required", Always),
            ("164.312(a)(2)(ii)", "Emergency access procedure", Oversight),
        ],
    },
    StaticFramework {
        id: "FDA_21_CFR_PART_11",
        name: "FDA 21 CFR Part 11 (Electronic records; electronic signatures)",
        controls: &[
            ("11.10(d)", "Limiting system access to authorized individuals", Always),
            ("11.10(e)", "Secure, computer-generated, time-stamped audit trails", Always),
            ("11.10(g)", "Authority checks", Always),
        ],
    },
    StaticFramework {
        id: "ISO_13485",
        name: "ISO 13485:2016 Medical devices — Quality management systems",
        controls: &[
            ("4.1.6", "Validation of computer software used in the quality management system", Always),
            ("4.2.5", "Control of records", Always),
        ],
    },
    StaticFramework {
        id: "NIST_800_53",
        name: "NIST SP 800-53 Rev. 5",
        controls: &[
            ("AC-3", "Access enforcement", Always),
            ("AC-6", "Least privilege", Blocked),
            ("AU-2", "Event logging", Always),
            ("AU-12", "Audit record generation", Always),
        ],
    },
    StaticFramework {
        id: "ITAR",
        name: "International Traffic in Arms Regulations (22 CFR Parts 120–130)",
        controls: &[
            ("22 CFR 122.5", "Maintenance of records by registrants", Always),
            ("22 CFR Part 125", "Licenses for the export of technical data and classified defense articles", Blocked),
        ],
    },
    StaticFramework {
        id: "CMMC",
        name: "Cybersecurity Maturity Model Certification 2.0 (32 CFR Part 170), Level 2",
        controls: &[
            ("AC.L2-3.1.1", "Authorized access control", Always),
            ("AC.L2-3.1.2", "Transaction and function control", Always),
            ("AU.L2-3.3.1", "System auditing", Always),
        ],
    },
    StaticFramework {
        id: "ISO_26262",
        name: "ISO 26262:2018 Road vehicles — Functional safety",
        controls: &[
            ("ISO 26262-8 Clause 8", "Change management", Always),
            ("ISO 26262-8 Clause 9", "Verification", Oversight),
        ],
    },
    StaticFramework {
        id: "UNECE_R155",
        name: "UN Regulation No. 155 (Cyber security and cyber security management system)",
        controls: &[(
            "7.2.2.2",
            "CSMS processes, incl. detecting and responding to cyber-attacks",
            Always,
        )],
    },
    StaticFramework {
        id: "UNECE_R156",
        name: "UN Regulation No. 156 (Software update and software update management system)",
        controls: &[("7.1.1", "Software update management system processes", Always)],
    },
    StaticFramework {
        id: "C_TPAT",
        name: "CBP Customs Trade Partnership Against Terrorism — Minimum Security Criteria",
        controls: &[
            ("MSC Cybersecurity", "Cybersecurity criteria (access and monitoring of IT systems)", Always),
            ("MSC Business Partners", "Business partner requirements", Blocked),
        ],
    },
    StaticFramework {
        id: "ISO_28000",
        name: "ISO 28000:2022 Security and resilience — Security management systems",
        controls: &[
            ("8.1", "Operational planning and control", Always),
            ("9.1", "Monitoring, measurement, analysis and evaluation", Always),
        ],
    },
    StaticFramework {
        id: "NERC_CIP",
        name: "NERC Critical Infrastructure Protection Reliability Standards",
        controls: &[
            ("CIP-004-7 R4", "Access management program", Always),
            ("CIP-005-7 R1", "Electronic security perimeter", Blocked),
            ("CIP-007-6 R4", "Security event monitoring", Always),
        ],
    },
    StaticFramework {
        id: "IEC_62443",
        name: "IEC 62443-3-3 System security requirements and security levels",
        controls: &[
            ("SR 2.1", "Authorization enforcement", Always),
            ("SR 2.8", "Auditable events", Always),
        ],
    },
    StaticFramework {
        id: "NIS2",
        name: "NIS 2 Directive (Directive (EU) 2022/2555)",
        controls: &[("Art. 21", "Cybersecurity risk-management measures", Always)],
    },
];

impl StaticFramework {
    fn to_owned_framework(&self) -> ComplianceFramework {
        ComplianceFramework {
            id: self.id.to_string(),
            name: self.name.to_string(),
            controls: self
                .controls
                .iter()
                .map(|(id, title, when)| ControlRef {
                    id: (*id).to_string(),
                    title: (*title).to_string(),
                    evidenced_when: *when,
                })
                .collect(),
        }
    }
}

/// The built-in framework `id` (`EU_AI_ACT`, `HIPAA`, …) with its controls, if known.
pub fn framework(id: &str) -> Option<ComplianceFramework> {
    FRAMEWORKS
        .iter()
        .find(|f| f.id == id)
        .map(StaticFramework::to_owned_framework)
}

/// Whether `id` names a built-in framework.
pub fn is_known_framework(id: &str) -> bool {
    FRAMEWORKS.iter().any(|f| f.id == id)
}

/// The ids of all built-in frameworks, in table order.
pub fn framework_ids() -> impl Iterator<Item = &'static str> {
    FRAMEWORKS.iter().map(|f| f.id)
}

/// The status a decision has against every framework of its domain.
pub fn status_of(outcome: ComplianceOutcome) -> ComplianceStatus {
    match outcome.verdict {
        Verdict::Deny => ComplianceStatus::ViolationPrevented,
        Verdict::Escalate => ComplianceStatus::ReviewRequired,
        Verdict::Permit if outcome.dry_run || outcome.review => ComplianceStatus::ReviewRequired,
        Verdict::Permit => ComplianceStatus::Compliant,
    }
}

fn applies(when: EvidencedWhen, outcome: ComplianceOutcome) -> bool {
    match when {
        EvidencedWhen::Always => true,
        EvidencedWhen::Oversight => {
            outcome.verdict == Verdict::Escalate
                || (outcome.verdict == Verdict::Permit && outcome.review)
        }
        EvidencedWhen::Blocked => outcome.verdict == Verdict::Deny && !outcome.dry_run,
    }
}

/// The controls of `framework` this decision evidences.
pub fn evidenced_controls(
    framework: &ComplianceFramework,
    outcome: ComplianceOutcome,
) -> Vec<String> {
    framework
        .controls
        .iter()
        .filter(|c| applies(c.evidenced_when, outcome))
        .map(|c| c.id.clone())
        .collect()
}

/// One mapping per framework of the domain, from the built-in table. A framework id the table does
/// not know (a pack's inline framework, mapped by its plugin instead) yields a mapping with no controls.
pub fn default_mappings(
    config: &DomainConfig,
    outcome: ComplianceOutcome,
) -> Vec<ComplianceMapping> {
    let status = status_of(outcome);
    config
        .compliance_frameworks
        .iter()
        .map(|id| match FRAMEWORKS.iter().find(|f| f.id == id.as_str()) {
            Some(f) => ComplianceMapping {
                framework: Cow::Borrowed(f.id),
                controls: f
                    .controls
                    .iter()
                    .filter(|(_, _, when)| applies(*when, outcome))
                    .map(|(cid, _, _)| Cow::Borrowed(*cid))
                    .collect(),
                status,
            },
            None => ComplianceMapping {
                framework: Cow::Owned(id.clone()),
                controls: Vec::new(),
                status,
            },
        })
        .collect()
}

/// A plugin's compliance mappings for every [`ComplianceOutcome`], computed once (when a policy is
/// compiled) and shared by every decision with that outcome: a decision's mappings are one
/// reference-count increment, not a vector per framework.
#[derive(Debug, Clone)]
pub struct ComplianceTable([Arc<[ComplianceMapping]>; ComplianceOutcome::COUNT]);

impl ComplianceTable {
    /// Asks `plugin` once per outcome.
    pub fn of(plugin: &dyn DomainPlugin) -> Self {
        Self(std::array::from_fn(|i| {
            plugin.compliance(ComplianceOutcome::from_index(i)).into()
        }))
    }

    /// The mappings of a decision with `outcome`.
    pub fn get(&self, outcome: ComplianceOutcome) -> &Arc<[ComplianceMapping]> {
        // INVARIANT: `index` is below COUNT, the array's length.
        &self.0[outcome.index()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ident::DomainId;
    use crate::outcome::{DecisionOutcome, Finding, FindingEffect};

    fn config(frameworks: &[&str]) -> DomainConfig {
        DomainConfig {
            domain: DomainId::new("x").unwrap(),
            display_name: "X".into(),
            description: String::new(),
            actor_types: vec![],
            action_types: vec![],
            resource_types: vec![],
            compliance_frameworks: frameworks.iter().map(|s| s.to_string()).collect(),
            risk_models: vec![],
            policy_templates: vec![],
            constraints: Default::default(),
            metadata: Default::default(),
        }
    }

    fn outcome(verdict: Verdict, findings: &[Finding]) -> ComplianceOutcome {
        DecisionOutcome {
            verdict,
            findings,
            dry_run: false,
        }
        .compliance_outcome()
    }

    #[test]
    fn table_holds_the_real_control_references() {
        let expect = [
            ("EU_AI_ACT", &["Art. 12", "Art. 14"][..]),
            ("GDPR", &["Art. 5", "Art. 30"]),
            ("SOC2", &["CC6.1", "CC7.2"]),
            ("ISO_27001", &["A.8.15", "A.5.15"]),
            ("MIFID_II", &["RTS 6 Art. 15", "Art. 17"]),
            ("HIPAA", &["164.312(b)", "164.508"]),
            ("FDA_21_CFR_PART_11", &["11.10(e)"]),
        ];
        for (id, controls) in expect {
            let f = framework(id).unwrap_or_else(|| panic!("{id} missing"));
            for c in controls {
                assert!(f.controls.iter().any(|x| x.id == *c), "{id} lacks {c}");
            }
        }
        for id in [
            "SEC_RULE_613",
            "SEC_15C3_5",
            "DODD_FRANK",
            "BASEL_III",
            "ISO_13485",
        ] {
            assert!(!framework(id).unwrap().controls.is_empty(), "{id}");
        }
        assert!(framework("NOPE").is_none());
    }

    #[test]
    fn permitted_decision_evidences_record_keeping_but_not_human_oversight() {
        let m = default_mappings(&config(&["EU_AI_ACT"]), outcome(Verdict::Permit, &[]));
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].framework, "EU_AI_ACT");
        assert_eq!(m[0].controls, vec!["Art. 12".to_string()]);
        assert_eq!(m[0].status, ComplianceStatus::Compliant);
    }

    #[test]
    fn escalated_decision_evidences_human_oversight_and_requires_review() {
        let m = default_mappings(
            &config(&["EU_AI_ACT", "GDPR"]),
            outcome(Verdict::Escalate, &[]),
        );
        assert_eq!(m.len(), 2);
        assert!(m[0].controls.iter().any(|c| c == "Art. 14"));
        assert!(m[0].controls.iter().any(|c| c == "Art. 12"));
        assert_eq!(m[0].status, ComplianceStatus::ReviewRequired);
    }

    #[test]
    fn break_glass_review_on_permit_maps_emergency_access_control() {
        let findings = [Finding::new("hc.break_glass", FindingEffect::Review, "r")];
        let m = default_mappings(&config(&["HIPAA"]), outcome(Verdict::Permit, &findings));
        assert!(m[0].controls.iter().any(|c| c == "164.312(a)(2)(ii)"));
        assert_eq!(m[0].status, ComplianceStatus::ReviewRequired);
    }

    #[test]
    fn mappings_borrow_builtin_ids_and_serialize_as_plain_strings() {
        let m = default_mappings(&config(&["SOC2", "MY_OWN"]), outcome(Verdict::Deny, &[]));
        assert!(matches!(m[0].framework, Cow::Borrowed("SOC2")));
        assert!(m[0].controls.iter().all(|c| matches!(c, Cow::Borrowed(_))));
        assert!(matches!(m[1].framework, Cow::Owned(_)));
        let json = serde_json::to_string(&m).unwrap();
        assert_eq!(
            json,
            r#"[{"framework":"SOC2","controls":["CC6.1","CC7.2","CC7.3"],"status":"violation_prevented"},{"framework":"MY_OWN","controls":[],"status":"violation_prevented"}]"#
        );
        let back: Vec<ComplianceMapping> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, m);
    }

    #[test]
    fn denied_decision_is_violation_prevented_with_blocking_controls() {
        let m = default_mappings(&config(&["SOC2"]), outcome(Verdict::Deny, &[]));
        assert_eq!(m[0].status, ComplianceStatus::ViolationPrevented);
        assert!(m[0].controls.iter().any(|c| c == "CC7.3"));
        let dry = DecisionOutcome {
            verdict: Verdict::Permit,
            findings: &[],
            dry_run: true,
        };
        assert_eq!(
            status_of(dry.compliance_outcome()),
            ComplianceStatus::ReviewRequired
        );
    }

    #[derive(Debug)]
    struct Plugin(DomainConfig);

    impl DomainPlugin for Plugin {
        fn config(&self) -> &DomainConfig {
            &self.0
        }
    }

    #[test]
    fn compliance_table_holds_what_the_plugin_maps_for_every_outcome() {
        let plugin = Plugin(config(&["EU_AI_ACT", "SOC2"]));
        let table = ComplianceTable::of(&plugin);
        for i in 0..ComplianceOutcome::COUNT {
            let o = ComplianceOutcome::from_index(i);
            assert_eq!(&table.get(o)[..], &plugin.compliance(o)[..], "{o:?}");
        }
        let escalate = ComplianceOutcome {
            verdict: Verdict::Escalate,
            review: false,
            dry_run: false,
        };
        assert!(table.get(escalate)[0]
            .controls
            .iter()
            .any(|c| c == "Art. 14"));
        // One allocation per outcome: two decisions with the same outcome share it.
        assert!(Arc::ptr_eq(table.get(escalate), table.get(escalate)));
    }
}
