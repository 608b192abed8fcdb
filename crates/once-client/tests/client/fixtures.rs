//! The client's reading of the provider's answers, checked against JSON written from the
//! examples in the provider's OpenAPI documents (sim-management-openapi.yml,
//! authorization-openapi.yml), plus the things the documents do not promise.

use chrono::{NaiveDate, TimeZone, Utc};
use once_client::decode;
use once_client::wire::{mb_to_bytes, parse_datetime};
use once_client::{ClientError, ConnectionState, QuotaKind, SimState, SimUpdate, SmsSubmission, SmsType};
use reqwest::header::{HeaderMap, HeaderValue};
use rust_decimal::Decimal;
use std::str::FromStr;

const SIM: &str = r#"{
  "iccid": "8988303000123456789",
  "iccid_with_luhn": "89883030001234567890",
  "imsi": "901405100000018",
  "imsi_2": "901405100000018",
  "current_imsi": "901405100000018",
  "msisdn": "882285100000018",
  "imei": "0000000000000018",
  "imei_lock": true,
  "status": "Disabled",
  "activation_date": "2018-03-09T07:59:09.000+0000",
  "ip_address": "100.100.100.18",
  "current_quota": 500,
  "quota_status": {"id": 0, "description": "More than 20% available",
                   "threshold_reached_date": null, "quota_exceeded_date": null},
  "current_quota_SMS": 250,
  "quota_status_SMS": {"id": 1, "description": "Less than 20% available",
                       "threshold_reached_date": "2021-06-30T10:00:00.000Z"},
  "label": "DX-137-B12"
}"#;

fn decode_error(result: Result<impl std::fmt::Debug, ClientError>) -> (&'static str, String, String) {
    match result {
        Err(ClientError::Decode {
            endpoint,
            reason,
            body_excerpt,
        }) => (endpoint, reason, body_excerpt),
        other => panic!("expected a decode error, got {other:?}"),
    }
}

#[test]
fn a_sim_from_the_documents_example() {
    let sim = decode::sim(SIM.as_bytes()).unwrap();
    assert_eq!(sim.iccid, "8988303000123456789");
    assert_eq!(sim.iccid_with_luhn.as_deref(), Some("89883030001234567890"));
    assert_eq!(sim.imsi.as_deref(), Some("901405100000018"));
    assert_eq!(sim.msisdn.as_deref(), Some("882285100000018"));
    assert_eq!(sim.imei.as_deref(), Some("0000000000000018"));
    assert_eq!(sim.imei_lock, Some(true));
    assert_eq!(sim.status, Some(SimState::Disabled));
    assert_eq!(
        sim.activation_date,
        Some(Utc.with_ymd_and_hms(2018, 3, 9, 7, 59, 9).unwrap())
    );
    assert_eq!(sim.ip_address.as_deref(), Some("100.100.100.18"));
    assert_eq!(sim.current_quota_bytes, Some(500_000_000));
    assert_eq!(sim.current_quota_sms, Some(250));
    let data_status = sim.quota_status.unwrap();
    assert_eq!(data_status.id, Some(0));
    assert_eq!(data_status.threshold_reached_date, None);
    let sms_status = sim.quota_status_sms.unwrap();
    assert_eq!(sms_status.id, Some(1));
    assert_eq!(
        sms_status.threshold_reached_date,
        Some(Utc.with_ymd_and_hms(2021, 6, 30, 10, 0, 0).unwrap())
    );
    assert_eq!(sim.label.as_deref(), Some("DX-137-B12"));
}

#[test]
fn a_sim_with_missing_and_null_fields() {
    let body = r#"{"iccid": "8988303000000000001", "imsi": null, "msisdn": "", "status": null,
                   "imei_lock": null, "current_quota": null, "quota_status": null,
                   "activation_date": null, "label": null, "unknown_field": {"x": 1}}"#;
    let sim = decode::sim(body.as_bytes()).unwrap();
    assert_eq!(sim.iccid, "8988303000000000001");
    assert_eq!(sim.imsi, None);
    assert_eq!(sim.msisdn, None, "an empty string is no MSISDN");
    assert_eq!(sim.status, None);
    assert_eq!(sim.imei_lock, None);
    assert_eq!(sim.current_quota_bytes, None);
    assert_eq!(sim.quota_status, None);
    assert_eq!(sim.activation_date, None);
    assert_eq!(sim.iccid_with_luhn, None);
    assert_eq!(sim.current_quota_sms, None);
    assert_eq!(sim.label, None);
}

#[test]
fn numbers_sent_as_strings_and_unknown_states_are_read() {
    let body = r#"{"iccid": "8988303000000000001", "imsi": 901405100000018, "imei_lock": "false",
                   "status": "Suspended", "current_quota": "0.5", "current_quota_SMS": "250"}"#;
    let sim = decode::sim(body.as_bytes()).unwrap();
    assert_eq!(sim.imsi.as_deref(), Some("901405100000018"));
    assert_eq!(sim.imei_lock, Some(false));
    assert_eq!(sim.status, Some(SimState::Other("Suspended".into())));
    assert_eq!(sim.current_quota_bytes, Some(500_000));
    assert_eq!(sim.current_quota_sms, Some(250));
}

#[test]
fn a_sim_without_an_iccid_is_a_decode_error() {
    let (endpoint, reason, _) = decode_error(decode::sim(br#"{"imsi": "901405100000018"}"#));
    assert_eq!(endpoint, "GET /v1/sims/{iccid}");
    assert!(reason.contains("iccid"), "{reason}");
}

fn paging_headers(total: &str, pages: &str, current: &str, per_page: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert("X-Total-Count", HeaderValue::from_str(total).unwrap());
    headers.insert("X-Total-Pages", HeaderValue::from_str(pages).unwrap());
    headers.insert("X-Current-Page", HeaderValue::from_str(current).unwrap());
    headers.insert("X-Count-Per-Page", HeaderValue::from_str(per_page).unwrap());
    headers
}

#[test]
fn a_sim_list_page_with_its_paging_headers() {
    let body = format!("[{SIM}, {{\"iccid\": \"8988303000123456790\", \"status\": \"Enabled\"}}]");
    let page = decode::sim_page(body.as_bytes(), &paging_headers("250", "3", "2", "100"), 2, 100).unwrap();
    assert_eq!(page.sims.len(), 2);
    assert_eq!(page.sims[1].status, Some(SimState::Enabled));
    assert_eq!(page.total_count, 250);
    assert_eq!(page.total_pages, 3);
    assert_eq!(page.current_page, 2);
    assert_eq!(page.page_size, 100);
}

#[test]
fn a_sim_list_page_without_headers_falls_back_to_what_it_holds() {
    let full = format!("[{SIM}, {SIM}]");
    let page = decode::sim_page(full.as_bytes(), &HeaderMap::new(), 1, 2).unwrap();
    assert_eq!(page.total_pages, 2, "a full page may have a successor");
    let short = format!("[{SIM}]");
    let page = decode::sim_page(short.as_bytes(), &HeaderMap::new(), 3, 2).unwrap();
    assert_eq!((page.total_pages, page.current_page, page.total_count), (3, 3, 5));
}

#[test]
fn a_malformed_paging_header_is_a_decode_error() {
    let (endpoint, reason, _) = decode_error(decode::sim_page(
        b"[]",
        &paging_headers("many", "3", "1", "100"),
        1,
        100,
    ));
    assert_eq!(endpoint, "GET /v1/sims");
    assert!(reason.contains("x-total-count"), "{reason}");
}

#[test]
fn data_quota_from_the_documents_example() {
    let body = r#"{"volume": 435.787951, "total_volume": 500, "expiry_date": "2029-01-01T00:00:00.000Z",
                   "peak_throughput": 1000000, "last_volume_added": 500,
                   "last_status_change_date": "2018-10-01T11:59:44.000Z", "threshold_percentage": 20}"#;
    let quota = decode::quota(QuotaKind::Data, body.as_bytes()).unwrap();
    assert_eq!(quota.kind, QuotaKind::Data);
    assert_eq!(quota.remaining, 435_787_951);
    assert_eq!(quota.total, 500_000_000);
    assert_eq!(
        quota.expiry_date,
        Some(Utc.with_ymd_and_hms(2029, 1, 1, 0, 0, 0).unwrap())
    );
    assert_eq!(quota.peak_throughput, Some(1_000_000));
    assert_eq!(quota.last_volume_added, Some(500_000_000));
    assert_eq!(
        quota.last_status_change_date,
        Some(Utc.with_ymd_and_hms(2018, 10, 1, 11, 59, 44).unwrap())
    );
    assert_eq!(quota.threshold_percentage, Some(20));
}

#[test]
fn sms_quota_counts_messages() {
    let body = r#"{"volume": 248, "total_volume": 250, "expiry_date": null, "threshold_percentage": null}"#;
    let quota = decode::quota(QuotaKind::Sms, body.as_bytes()).unwrap();
    assert_eq!((quota.remaining, quota.total), (248, 250));
    assert_eq!(quota.expiry_date, None);
    assert_eq!(quota.last_volume_added, None);
    let (endpoint, reason, _) = decode_error(decode::quota(
        QuotaKind::Sms,
        br#"{"volume": 2.5, "total_volume": 250}"#,
    ));
    assert_eq!(endpoint, "GET /v1/sims/{iccid}/quota/sms");
    assert!(reason.contains("2.5"), "{reason}");
}

#[test]
fn a_quota_without_its_volumes_is_a_decode_error() {
    let (endpoint, reason, _) = decode_error(decode::quota(QuotaKind::Data, br#"{"total_volume": 500}"#));
    assert_eq!(endpoint, "GET /v1/sims/{iccid}/quota/data");
    assert!(reason.contains("volume"), "{reason}");
    let (_, reason, _) = decode_error(decode::quota(
        QuotaKind::Data,
        br#"{"volume": -1, "total_volume": 500}"#,
    ));
    assert!(reason.contains("negative"), "{reason}");
}

#[test]
fn usage_with_decimal_strings_from_the_documents_example() {
    let body = r#"{"stats": [
      {"date": "2021-06-30T00:00:00.000Z",
       "data": {"cost": "0.002803", "currency": {"id": 1, "symbol": "€", "code": "EUR"},
                "traffic_type": {"description": "Data", "id": 1, "unit": "MB"},
                "volume": "0.002803", "volume_rx": "0.001482", "volume_tx": "0.001321"},
       "sms": {"cost": "4", "currency": {"id": 1, "symbol": "€", "code": "EUR"},
               "traffic_type": {"description": "SMS", "id": 1, "unit": "SMS"},
               "volume": "3", "volume_rx": "2", "volume_tx": "1"}},
      {"date": "2021-07-01", "data": null},
      {"date": "2021-07-02", "data": {"volume": "1234.5678915", "volume_rx": 1000, "volume_tx": "234.5678915"},
       "sms": {"volume": 0}}
    ]}"#;
    let days = decode::usage(body.as_bytes()).unwrap();
    assert_eq!(days.len(), 3);
    assert_eq!(days[0].date, NaiveDate::from_ymd_opt(2021, 6, 30).unwrap());
    assert_eq!(days[0].data.volume_bytes, 2803);
    assert_eq!(days[0].data.rx_bytes, 1482);
    assert_eq!(days[0].data.tx_bytes, 1321);
    assert_eq!(
        (days[0].sms.volume, days[0].sms.volume_rx, days[0].sms.volume_tx),
        (3, 2, 1)
    );
    assert_eq!(days[1].date, NaiveDate::from_ymd_opt(2021, 7, 1).unwrap());
    assert_eq!(days[1].data.volume_bytes, 0);
    assert_eq!(days[1].sms.volume, 0);
    // Half a byte rounds up; the parts still add up to the whole.
    assert_eq!(days[2].data.volume_bytes, 1_234_567_892);
    assert_eq!(days[2].data.rx_bytes, 1_000_000_000);
    assert_eq!(days[2].data.tx_bytes, 234_567_892);
}

#[test]
fn an_empty_usage_answer_is_no_days() {
    assert!(decode::usage(br#"{"stats": []}"#).unwrap().is_empty());
    assert!(decode::usage(br#"{"stats": null}"#).unwrap().is_empty());
    assert!(decode::usage(br#"{}"#).unwrap().is_empty());
}

#[test]
fn a_usage_day_with_a_bad_volume_or_date_is_a_decode_error() {
    let (endpoint, reason, _) = decode_error(decode::usage(
        br#"{"stats": [{"date": "2021-06-30", "data": {"volume": "lots"}}]}"#,
    ));
    assert_eq!(endpoint, "GET /v1/sims/{iccid}/usage");
    assert!(reason.contains("lots"), "{reason}");
    let (_, reason, _) = decode_error(decode::usage(br#"{"stats": [{"date": "30.06.2021"}]}"#));
    assert!(reason.contains("30.06.2021"), "{reason}");
}

const SMS_MT: &str = r#"{
  "id": 590,
  "submit_date": "2015-10-05T13:56:59.000Z",
  "delivery_date": "2015-10-05T13:56:59.000Z",
  "expiry_date": "2015-10-06T13:56:59.000Z",
  "final_date": "2015-10-05T13:57:03.000Z",
  "retry_date": "2015-10-05T13:57:03.000Z",
  "last_delivery_attempt": "2015-10-05T13:57:03.000Z",
  "retry_count": "1",
  "source_address": "1234567890",
  "iccid": "8988303000000001000",
  "msisdn": "883XXXXXXXXXXXX",
  "imsi": "901XXXXXXXXXXXX",
  "msc": "491600190000",
  "dcs": 0,
  "udh": "050003CC0301",
  "payload": "This is a SMS message.",
  "status": {"id": 4, "description": "DELIVERED"},
  "sms_type": {"id": 1, "description": "MT"},
  "source_address_type": {"id": 145}
}"#;

#[test]
fn an_sms_from_the_documents_example() {
    let sms = decode::sms(SMS_MT.as_bytes()).unwrap();
    assert_eq!(sms.id, 590);
    assert_eq!(
        sms.submit_date,
        Some(Utc.with_ymd_and_hms(2015, 10, 5, 13, 56, 59).unwrap())
    );
    assert_eq!(
        sms.final_date,
        Some(Utc.with_ymd_and_hms(2015, 10, 5, 13, 57, 3).unwrap())
    );
    assert_eq!(sms.retry_count, Some(1));
    assert_eq!(sms.source_address.as_deref(), Some("1234567890"));
    assert_eq!(sms.iccid.as_deref(), Some("8988303000000001000"));
    assert_eq!(sms.dcs, Some(0));
    assert_eq!(sms.udh.as_deref(), Some("050003CC0301"));
    assert_eq!(sms.payload.as_deref(), Some("This is a SMS message."));
    let status = sms.status.unwrap();
    assert_eq!(
        (status.id, status.description.as_deref()),
        (Some(4), Some("DELIVERED"))
    );
    assert_eq!(sms.sms_type, SmsType::Mt);
    assert_eq!(sms.source_address_type, Some(145));
}

#[test]
fn an_sms_list_with_mo_and_sparse_messages() {
    let body = format!(
        r#"[{SMS_MT},
            {{"id": "591", "submit_date": "2015-10-05T14:00:00.000+0000", "payload": "  ping ",
              "sms_type": {{"id": 2, "description": "MO"}}, "status": null, "delivery_date": null}},
            {{"id": 592}}]"#
    );
    let list = decode::sms_list(body.as_bytes()).unwrap();
    assert_eq!(list.len(), 3);
    assert_eq!(list[1].id, 591);
    assert_eq!(list[1].sms_type, SmsType::Mo);
    assert_eq!(
        list[1].payload.as_deref(),
        Some("  ping "),
        "a payload is kept as sent"
    );
    assert_eq!(
        list[1].submit_date,
        Some(Utc.with_ymd_and_hms(2015, 10, 5, 14, 0, 0).unwrap())
    );
    assert_eq!(list[1].status, None);
    assert_eq!(list[2].sms_type, SmsType::Other);
    assert_eq!(list[2].payload, None);
}

#[test]
fn an_sms_without_an_id_is_a_decode_error() {
    let (endpoint, reason, _) = decode_error(decode::sms_list(br#"[{"payload": "x"}]"#));
    assert_eq!(endpoint, "GET /v1/sims/{iccid}/sms");
    assert!(reason.contains("id"), "{reason}");
}

#[test]
fn connectivity_from_the_documents_example() {
    let body = r#"{
      "status": "ONLINE",
      "location": {
        "iccid": "8988280666000000000", "imsi": "901405100000018",
        "last_updated": "2018-11-07T17:21:46.000Z", "last_updated_gprs": "2018-11-07T17:21:46.000Z",
        "sgsn_number": "491600300000", "vlr_number": "491710000000", "msc": "491710300000",
        "operator_id": "2", "sgsn_ip_address": "x.x.x.x",
        "operator": {"id": "2", "name": "T-Mobile",
                     "country": {"id": "74", "name": "Germany", "iso-code": "de"}},
        "country": {"country_id": "74", "name": "Germany", "country_code": "49", "mcc": "262",
                    "iso-code": "de", "latitude": "51", "longitude": "9"}
      },
      "pdp_context": {
        "pdp_context_id": "1898708000", "tariff_profile_id": "129700", "ratezone_id": "2171",
        "created": "2018-11-07T15:00:00.000Z", "mcc": "262", "mnc": "1", "operator_id": "38701",
        "lac": "10458000", "ci": "5559", "ue_ip_address": "10.100.0.18", "imeisv": "8635760478500000",
        "duration": "02:39:10", "rat_type": {"rat_type_id": "6", "description": "4G"}
      },
      "services": ["GPRS", "SMS"]
    }"#;
    let status = decode::connectivity(body.as_bytes()).unwrap();
    assert_eq!(status.status, Some(ConnectionState::Online));
    let location = status.location.unwrap();
    let operator = location.operator.unwrap();
    assert_eq!(operator.name.as_deref(), Some("T-Mobile"));
    assert_eq!(operator.country.unwrap().iso_code.as_deref(), Some("de"));
    let country = location.country.unwrap();
    assert_eq!(country.name.as_deref(), Some("Germany"));
    assert_eq!(country.country_code.as_deref(), Some("49"));
    assert_eq!(country.iso_code.as_deref(), Some("de"));
    assert_eq!(
        location.last_updated,
        Some(Utc.with_ymd_and_hms(2018, 11, 7, 17, 21, 46).unwrap())
    );
    let pdp = status.pdp_context.unwrap();
    assert_eq!(pdp.ue_ip_address.as_deref(), Some("10.100.0.18"));
    assert_eq!(pdp.rat_type.unwrap().description.as_deref(), Some("4G"));
    assert_eq!(status.services, vec!["GPRS".to_owned(), "SMS".to_owned()]);
}

#[test]
fn an_offline_sim_without_location_or_session() {
    let body = r#"{"status": "OFFLINE", "location": null, "pdp_context": null, "services": null}"#;
    let status = decode::connectivity(body.as_bytes()).unwrap();
    assert_eq!(status.status, Some(ConnectionState::Offline));
    assert!(status.location.is_none() && status.pdp_context.is_none() && status.services.is_empty());
    let attached =
        decode::connectivity(br#"{"status": "ATTACHED", "location": {"operator": {"id": 2}}}"#).unwrap();
    assert_eq!(attached.status, Some(ConnectionState::Attached));
    assert_eq!(
        attached.location.unwrap().operator.unwrap().id.as_deref(),
        Some("2")
    );
}

#[test]
fn the_token_answer_from_the_documents_example() {
    let body = r#"{"status_code": 200, "access_token": "eyJpzhr...", "token_type": "bearer",
                   "expires_in": 3600, "user_id": "user", "score": "all"}"#;
    let token = decode::token(body.as_bytes()).unwrap();
    assert_eq!(token.access_token, "eyJpzhr...");
    assert_eq!(token.expires_in, Some(3600));
    assert_eq!(token.token_type.as_deref(), Some("bearer"));
    let (endpoint, _, _) = decode_error(decode::token(br#"{"status_code": 200, "expires_in": 3600}"#));
    assert_eq!(endpoint, "POST /oauth/token");
    let (_, reason, _) = decode_error(decode::token(br#"{"access_token": " "}"#));
    assert!(reason.contains("empty"), "{reason}");
}

#[test]
fn sim_events_from_the_documents_example() {
    let body = r#"{"events": [
        {"timestamp": "2018-05-07T14:08:05.000+0000",
         "event_type": "Status of SIM changed from 'Issued' to 'Activated'",
         "iccid": "8988280666000000000", "imei": "0000000000000018", "imsi": "901405100000018",
         "country": "Germany", "operator": "T-Mobile", "mcc": "262", "mnc": "01",
         "alert": false, "event_severity": "Info"},
        {"timestamp": "2018-05-08T09:00:00.000Z", "event_type": "Update location"}],
      "totalEvents": 10, "totalPages": 5}"#;
    let page = decode::events(body.as_bytes(), &HeaderMap::new(), 1).unwrap();
    assert_eq!((page.total_events, page.total_pages), (10, 5));
    assert_eq!(page.events.len(), 2);
    let first = &page.events[0];
    assert_eq!(
        first.timestamp,
        Some(Utc.with_ymd_and_hms(2018, 5, 7, 14, 8, 5).unwrap())
    );
    assert_eq!(
        first.event_type.as_deref(),
        Some("Status of SIM changed from 'Issued' to 'Activated'")
    );
    assert_eq!(first.mnc.as_deref(), Some("01"));
    assert_eq!(first.alert, Some(false));
    assert_eq!(page.events[1].operator, None);
    let bare = decode::events(br#"{"events": []}"#, &paging_headers("7", "2", "1", "5"), 1).unwrap();
    assert_eq!((bare.total_events, bare.total_pages), (7, 2));
}

#[test]
fn malformed_truncated_empty_and_html_bodies_are_decode_errors_naming_the_endpoint() {
    let truncated = &SIM[..SIM.len() / 2];
    let (endpoint, reason, excerpt) = decode_error(decode::sim(truncated.as_bytes()));
    assert_eq!(endpoint, "GET /v1/sims/{iccid}");
    assert!(reason.contains("truncated"), "{reason}");
    assert!(excerpt.starts_with("{"), "{excerpt}");

    let html = b"<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>";
    let (endpoint, reason, excerpt) = decode_error(decode::sims(html));
    assert_eq!(endpoint, "GET /v1/sims");
    assert!(reason.contains("HTML"), "{reason}");
    assert!(excerpt.contains("502 Bad Gateway"), "{excerpt}");

    let (endpoint, reason, _) = decode_error(decode::usage(b""));
    assert_eq!(endpoint, "GET /v1/sims/{iccid}/usage");
    assert!(reason.contains("empty"), "{reason}");

    let (endpoint, _, _) = decode_error(decode::connectivity(b"[1, 2, 3]"));
    assert_eq!(endpoint, "GET /v1/sims/{iccid}/status");
    let (endpoint, _, _) = decode_error(decode::sms_list(br#"{"message": "not a list"}"#));
    assert_eq!(endpoint, "GET /v1/sims/{iccid}/sms");
    let (endpoint, _, _) = decode_error(decode::quota(QuotaKind::Data, b"\xff\xfe garbage"));
    assert_eq!(endpoint, "GET /v1/sims/{iccid}/quota/data");
}

#[test]
fn a_long_body_is_quoted_only_in_part() {
    let long = format!("<html>{}</html>", "x".repeat(10_000));
    let (_, _, excerpt) = decode_error(decode::sim(long.as_bytes()));
    assert!(excerpt.chars().count() <= 201, "{}", excerpt.len());
    // Cutting must respect character boundaries.
    let multibyte = format!("<p>{}</p>", "€".repeat(500));
    let (_, _, excerpt) = decode_error(decode::sim(multibyte.as_bytes()));
    assert!(excerpt.ends_with('…'));
}

fn bytes(mb: &str) -> Result<u64, String> {
    mb_to_bytes(Decimal::from_str(mb).unwrap())
}

#[test]
fn megabytes_convert_to_bytes_exactly() {
    assert_eq!(bytes("0.002803"), Ok(2803));
    assert_eq!(bytes("0.001482"), Ok(1482));
    assert_eq!(bytes("0"), Ok(0));
    assert_eq!(bytes("1"), Ok(1_000_000));
    assert_eq!(bytes("435.787951"), Ok(435_787_951));
    assert_eq!(bytes("123456.789012"), Ok(123_456_789_012));
    // Only a fraction of a byte is rounded, half up.
    assert_eq!(bytes("0.0000005"), Ok(1));
    assert_eq!(bytes("0.00000049999"), Ok(0));
    assert_eq!(bytes("2.0000015"), Ok(2_000_002));
    // The largest byte count there is, and one past it.
    assert_eq!(bytes("18446744073709.551615"), Ok(u64::MAX));
    assert!(bytes("18446744073709.551616").is_err());
    assert!(bytes("-0.000001").is_err());
    // Values whose binary floating-point form is inexact stay exact.
    assert_eq!(
        bytes("0.1").unwrap() + bytes("0.2").unwrap(),
        bytes("0.3").unwrap()
    );
    assert_eq!(bytes("9007199254.740993"), Ok(9_007_199_254_740_993));
}

#[test]
fn volumes_written_as_json_numbers_are_read_from_their_text() {
    // 9007199254740993 is not representable as an f64; a detour through f64 would give ...992.
    let body = r#"{"volume": 9007199254.740993, "total_volume": 1e4}"#;
    let quota = decode::quota(QuotaKind::Data, body.as_bytes()).unwrap();
    assert_eq!(quota.remaining, 9_007_199_254_740_993);
    assert_eq!(quota.total, 10_000_000_000);
}

#[test]
fn both_date_formats_are_accepted() {
    let expected = Utc.with_ymd_and_hms(2018, 3, 9, 7, 59, 9).unwrap();
    for text in [
        "2018-03-09T07:59:09.000+0000",
        "2018-03-09T07:59:09.000Z",
        "2018-03-09T07:59:09Z",
        "2018-03-09T08:59:09+01:00",
        "2018-03-09T08:59:09.000+0100",
        "2018-03-09T07:59:09",
    ] {
        assert_eq!(parse_datetime(text), Ok(expected), "{text}");
    }
    assert_eq!(
        parse_datetime("2018-03-09"),
        Ok(Utc.with_ymd_and_hms(2018, 3, 9, 0, 0, 0).unwrap())
    );
    assert!(parse_datetime("09.03.2018 07:59").is_err());
    let (_, reason, _) = decode_error(decode::sim(br#"{"iccid": "1", "activation_date": "yesterday"}"#));
    assert!(reason.contains("yesterday"), "{reason}");
}

#[test]
fn requests_are_written_as_the_documents_describe() {
    let update = SimUpdate {
        iccid: "8988303000123456789".into(),
        label: Some("DX-137-B12".into()),
        imei_lock: None,
        status: Some(SimState::Disabled),
    };
    assert_eq!(
        serde_json::to_value(&update).unwrap(),
        serde_json::json!({"iccid": "8988303000123456789", "label": "DX-137-B12", "status": "Disabled"})
    );
    let sms = SmsSubmission {
        udh: Some("050003CC0301".into()),
        dcs: Some(0),
        source_address_type: Some(145),
        expiry_date: Some(Utc.with_ymd_and_hms(2018, 3, 14, 16, 10, 29).unwrap()),
        ..SmsSubmission::text("1234567890", "This is a SMS message.")
    };
    assert_eq!(
        serde_json::to_value(&sms).unwrap(),
        serde_json::json!({"source_address": "1234567890", "payload": "This is a SMS message.",
                           "udh": "050003CC0301", "dcs": 0, "source_address_type": {"id": 145},
                           "expiry_date": "2018-03-14T16:10:29Z"})
    );
    assert_eq!(
        serde_json::to_value(SmsSubmission::text("123", "hi")).unwrap(),
        serde_json::json!({"source_address": "123", "payload": "hi"})
    );
}

#[test]
fn an_sms_id_is_read_from_the_location() {
    assert_eq!(
        decode::id_from_location("https://api.1nce.com/management-api/v1/sims/8988/sms/590"),
        Some(590)
    );
    assert_eq!(decode::id_from_location("/v1/sims/8988/sms/591/"), Some(591));
    assert_eq!(
        decode::id_from_location("https://api.1nce.com/management-api/v1/orders/abc"),
        None
    );
}

mod never_panics {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn any_bytes_decode_to_a_value_or_a_decode_error(body in proptest::collection::vec(any::<u8>(), 0..300)) {
            let results = [
                decode::sim(&body).err(),
                decode::sims(&body).err(),
                decode::usage(&body).err(),
                decode::quota(QuotaKind::Data, &body).err(),
                decode::quota(QuotaKind::Sms, &body).err(),
                decode::sms_list(&body).err(),
                decode::connectivity(&body).err(),
                decode::token(&body).err(),
                decode::events(&body, &HeaderMap::new(), 1).err(),
            ];
            for error in results.into_iter().flatten() {
                prop_assert!(matches!(error, ClientError::Decode { .. }), "{:?}", error);
            }
        }

        #[test]
        fn any_text_as_a_volume_is_read_or_refused(text in ".{0,40}", number in "[-+0-9.eE]{1,30}") {
            for volume in [serde_json::Value::String(text.clone()), serde_json::Value::String(number.clone())] {
                let body = serde_json::json!({"stats": [{"date": "2021-06-30", "data": {"volume": volume}}]});
                let _ = decode::usage(body.to_string().as_bytes());
            }
            // A bare number in the JSON text.
            let body = format!(r#"{{"volume": {number}, "total_volume": 1}}"#);
            let _ = decode::quota(QuotaKind::Data, body.as_bytes());
            let _ = parse_datetime(&text);
            let _ = once_client::wire::parse_day(&text);
        }

        #[test]
        fn every_byte_count_survives_the_trip_through_megabytes(bytes_in in any::<u64>()) {
            // As the provider writes it: MB with six decimals, as a string and as a number.
            let mb = format!("{}.{:06}", bytes_in / 1_000_000, bytes_in % 1_000_000);
            let body = format!(
                r#"{{"stats": [{{"date": "2021-06-30", "data": {{"volume": "{mb}", "volume_rx": {mb}}}}}]}}"#
            );
            let days = decode::usage(body.as_bytes()).unwrap();
            prop_assert_eq!(days[0].data.volume_bytes, bytes_in);
            prop_assert_eq!(days[0].data.rx_bytes, bytes_in);
        }
    }
}
