@network @destructive
Feature: Partitions and link faults
  Both sides alive but cut off from each other: the router must notice and degrade to one
  side; slow links must not break answers; the router's own links to P and D count too.

  Scenario: The KV link between decode and prefill is cut
    Given a local P/D deployment with 1 prefill and 1 decode node
    And a load of 4 concurrent users
    When the KV link is cut after 1500ms for 2s
    And the load runs for 6s
    Then requests are served decode-only within 1s of the fault
    And the success rate over the whole run is at least 97%
    And requests are served disaggregated again within 2s of the heal
    And every completed answer is complete

  Scenario: The KV link is slowed
    Given a local P/D deployment with 1 prefill and 1 decode node
    # 8 users, so some KV transfer is in flight at the heal in every run (with 4 the users'
    # lockstep often leaves none); it must finish, not wait for the 3 s KV timeout.
    And a load of 8 concurrent users
    When the KV link is slowed by 80 ms after 1500ms for 2s
    And the load runs for 5s
    Then the success rate over the whole run is at least 99%
    And TTFT p90 during the fault is below 1500 ms
    And no request took longer than 2s
    And every completed answer is complete

  Scenario: The KV link flaps
    Given a local P/D deployment with 1 prefill and 1 decode node
    And a load of 4 concurrent users
    When the KV link is cut 3 times, for 600ms each time
    And the load runs for 5s
    Then the success rate over the whole run is at least 95%
    And every completed answer is complete

  Scenario: The router loses its link to the prefill node
    Given a local P/D deployment with 1 prefill and 1 decode node
    And a load of 4 concurrent users
    When the router to prefill link is cut after 1500ms for 2s
    And the load runs for 5s
    Then requests are served decode-only within 1s of the fault
    And the success rate over the whole run is at least 95%

  Scenario: The router loses its link to the decode node
    Given a local P/D deployment with 1 prefill and 1 decode node
    And a load of 4 concurrent users
    When the router to decode link is cut after 1500ms for 2s
    And the load runs for 5s
    Then requests are served prefill-only within 1s of the fault
    And the success rate over the whole run is at least 90%
